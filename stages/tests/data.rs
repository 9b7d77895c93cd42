//! Loaders on generated files: IDX (gzipped and raw), CIFAR-10 binary built from real images,
//! and every failure: truncated, wrong magic, bad checksum, class out of range.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use stages::data::{self, cifar, idx, DatasetKind, OneClass, Preprocess};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stages-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tiny MNIST-like dataset: class k images are filled with value 20*k.
fn write_mnist(dir: &Path, n_train: usize, n_test: usize, gzipped: bool, sums: bool) {
    let mut lines = Vec::new();
    for (split, n) in [("train", n_train), ("t10k", n_test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = labels.iter().flat_map(|l| std::iter::repeat_n(20 * l + (l % 3), 28 * 28)).collect();
        let img = idx::encode_images(&idx::Images { n, rows: 28, cols: 28, pixels });
        let lab = idx::encode_labels(&labels);
        for (name, bytes) in [(format!("{split}-images-idx3-ubyte"), img), (format!("{split}-labels-idx1-ubyte"), lab)] {
            lines.push(format!("{}  {name}", hex(&Sha256::digest(&bytes))));
            if gzipped {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
    if sums {
        std::fs::write(dir.join("SHA256SUMS"), lines.join("\n")).unwrap();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn idx_gzipped_and_raw_load_and_split() {
    for gzipped in [true, false] {
        let d = tmp(&format!("idx-{gzipped}"));
        write_mnist(&d, 50, 30, gzipped, true);
        let raw = data::load_raw(DatasetKind::Mnist, &d).unwrap();
        assert!(raw.unverified.is_empty());
        assert_eq!((raw.train.n, raw.test.n), (50, 30));
        let oc = data::one_class(&raw, 3, Preprocess::Unit, 0, 0).unwrap();
        assert_eq!(oc.train_x.size(), vec![5, 1, 28, 28]);
        assert_eq!(oc.test_x.size(), vec![30, 1, 28, 28]);
        let labels = Vec::<i64>::try_from(&oc.test_label).unwrap();
        assert_eq!(labels.iter().filter(|l| **l == 0).count(), 3);
        assert!((oc.train_x.double_value(&[0, 0, 0, 0]) - 60.0 / 255.0).abs() < 1e-6);
        // Save and load round trip.
        let f = d.join("ds.safetensors");
        oc.save(&f).unwrap();
        let back = OneClass::load(&f).unwrap();
        assert!(back.test_x.equal(&oc.test_x));
    }
}

#[test]
fn gcn_minmax_uses_normal_train_statistics() {
    // Real images (constant synthetic ones have zero contrast).
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/bundled/mnist");
    let real = data::load_raw(DatasetKind::Mnist, &bundled).unwrap();
    assert!(real.unverified.is_empty(), "the bundled subset carries SHA256SUMS");
    let oc = data::one_class(&real, 0, Preprocess::GcnL1MinMax, 0, 0).unwrap();
    assert!((oc.train_x.min().double_value(&[]) - 0.0).abs() < 1e-6);
    assert!((oc.train_x.max().double_value(&[]) - 1.0).abs() < 1e-6);
    let scale = Vec::<f32>::try_from(&oc.scale).unwrap();
    assert!(scale[0] < 0.0 && scale[1] > 0.0, "GCN min/max are computed, not [0,1]: {scale:?}");
}

#[test]
fn truncated_idx_is_a_clear_error() {
    let d = tmp("trunc");
    write_mnist(&d, 20, 20, false, false);
    let p = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated"), "{e}");
}

#[test]
fn truncated_gzip_is_a_clear_error() {
    let d = tmp("truncgz");
    write_mnist(&d, 20, 20, true, true);
    let p = d.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("gzip"), "{e}");
}

#[test]
fn wrong_magic_is_a_clear_error() {
    let d = tmp("magic");
    write_mnist(&d, 20, 20, false, false);
    // Swap images and labels.
    std::fs::copy(d.join("train-labels-idx1-ubyte"), d.join("train-images-idx3-ubyte")).unwrap();
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("wrong magic number 0x00000801"), "{e}");
}

#[test]
fn checksum_mismatch_names_the_file() {
    let d = tmp("sum");
    write_mnist(&d, 20, 20, true, true);
    let sums = std::fs::read_to_string(d.join("SHA256SUMS")).unwrap();
    std::fs::write(d.join("SHA256SUMS"), sums.replacen(char::is_alphanumeric, "0", 1)).unwrap();
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("checksum mismatch") && e.contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn official_checksums_apply_to_full_files() {
    // A file named like the official one, without SHA256SUMS, is checked against the official sum.
    let d = tmp("official");
    write_mnist(&d, 20, 20, true, false);
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("checksum mismatch") && e.contains("expected ba891046"), "{e}");
}

#[test]
fn class_out_of_range_is_an_error() {
    let d = tmp("range");
    write_mnist(&d, 20, 20, true, true);
    let raw = data::load_raw(DatasetKind::Mnist, &d).unwrap();
    let e = data::one_class(&raw, 10, Preprocess::Unit, 0, 0).err().unwrap().to_string();
    assert!(e.contains("normal_class 10 is out of range"), "{e}");
    // A label byte above 9 inside a file.
    let mut lab = idx::encode_labels(&[1, 2, 11]);
    let e = idx::read_labels(Path::new("x"), &lab).unwrap_err().to_string();
    assert!(e.contains("label 11 at index 2"), "{e}");
    lab.truncate(9);
    assert!(idx::read_labels(Path::new("x"), &lab).unwrap_err().to_string().contains("declares 3 labels"));
}

/// Decodes one of the 20 real CIFAR-10 test PNGs into CHW bytes.
fn png_chw(path: &Path) -> Vec<u8> {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    assert_eq!((info.width, info.height), (32, 32));
    let mut chw = vec![0u8; 3 * 1024];
    for p in 0..1024 {
        for c in 0..3 {
            chw[c * 1024 + p] = buf[p * ch + c];
        }
    }
    chw
}

#[test]
fn cifar_binary_from_real_images() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/cifar10-sample");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sample)
        .unwrap_or_else(|e| panic!("{}: {e}", sample.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20, "the 20 real CIFAR-10 images");
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in &files {
        pixels.extend(png_chw(f));
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        labels.push(stem.rsplit('_').next().unwrap().parse::<u8>().unwrap());
    }
    let d = tmp("cifar");
    // Five train batches of 4 images each and a test batch of all 20, in the exact binary layout.
    for (i, f) in cifar::TRAIN_FILES.iter().enumerate() {
        let r = i * 4..i * 4 + 4;
        std::fs::write(d.join(f), cifar::encode_batch(&pixels[r.start * 3072..r.end * 3072], &labels[r])).unwrap();
    }
    std::fs::write(d.join(cifar::TEST_FILE), cifar::encode_batch(&pixels, &labels)).unwrap();
    let raw = data::load_raw(DatasetKind::Cifar10, &d).unwrap();
    assert_eq!(raw.train.n, 20);
    assert_eq!(raw.test_labels, labels);
    assert_eq!(raw.unverified.len(), 6, "no official per-file checksums for CIFAR-10 batches");
    // The first test image (a cat, label 3) round-trips exactly.
    assert_eq!(&raw.test.pixels[..3072], &pixels[..3072]);
    let oc = data::one_class(&raw, 8, Preprocess::GcnL1MinMax, 0, 0).unwrap();
    assert_eq!(oc.train_x.size()[1..], [3, 32, 32]);
    assert_eq!(oc.train_x.size()[0], labels.iter().filter(|l| **l == 8).count() as i64);

    std::fs::write(d.join(cifar::TEST_FILE), &cifar::encode_batch(&pixels, &labels)[..3073 * 2 + 100]).unwrap();
    let e = data::load_raw(DatasetKind::Cifar10, &d).err().unwrap().to_string();
    assert!(e.contains("test_batch.bin") && e.contains("truncated"), "{e}");
    let mut bad = cifar::encode_batch(&pixels, &labels);
    bad[3073] = 12;
    std::fs::write(d.join(cifar::TEST_FILE), bad).unwrap();
    let e = data::load_raw(DatasetKind::Cifar10, &d).err().unwrap().to_string();
    assert!(e.contains("record 1 has label 12"), "{e}");
}

#[test]
fn missing_dataset_says_where_it_looked() {
    let d = tmp("missing");
    let e = data::locate(DatasetKind::FashionMnist, Some(&d)).unwrap_err().to_string();
    assert!(e.contains("Fashion-MNIST not found") && e.contains(&d.display().to_string()) && e.contains("pipe data fetch"), "{e}");
}

#[test]
fn damaged_idx_headers_are_clear_errors_not_panics() {
    // Dimensions whose product overflows usize: no arithmetic panic, no allocation.
    let mut header = vec![0, 0, 8, 3];
    for d in [u32::MAX, u32::MAX, u32::MAX] {
        header.extend(d.to_be_bytes());
    }
    let e = idx::read_images(Path::new("x-idx3"), &header).unwrap_err().to_string();
    assert!(e.contains("x-idx3") && e.contains("more bytes than can exist"), "{e}");

    // 14x56 "MNIST" images, consistent with a SHA256SUMS that matches them: refused by shape.
    let d = tmp("shape");
    let mut lines = Vec::new();
    for (split, n) in [("train", 20usize), ("t10k", 10)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let img = idx::encode_images(&idx::Images { n, rows: 14, cols: 56, pixels: vec![7; n * 14 * 56] });
        for (name, bytes) in [(format!("{split}-images-idx3-ubyte"), img), (format!("{split}-labels-idx1-ubyte"), idx::encode_labels(&labels))] {
            lines.push(format!("{}  {name}", hex(&Sha256::digest(&bytes))));
            std::fs::write(d.join(name), bytes).unwrap();
        }
    }
    std::fs::write(d.join("SHA256SUMS"), lines.join("\n")).unwrap();
    let e = data::load_raw(DatasetKind::Mnist, &d).err().unwrap().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("images are 14x56; MNIST images are 28x28"), "{e}");
}
