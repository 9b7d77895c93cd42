//! A corpus of damaged inputs: dataset files (IDX, gzip, CIFAR-10 binary) and pipeline files that
//! are not what they claim. Each gives an error naming the file and what is wrong with it
//! (snapshotted, the scratch folder shown as `<DIR>`), none panics, none hangs.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use stages::data::{self, cifar, idx, DatasetKind};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A valid MNIST-format folder (20 train, 10 test images, raw IDX) with its SHA256SUMS (without
/// one, files named like the official ones are checked against the official checksums).
fn mnist(dir: &Path) {
    for (split, n) in [("train", 20usize), ("t10k", 10)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let img = idx::encode_images(&idx::Images { n, rows: 28, cols: 28, pixels: vec![9; n * 784] });
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), img).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), idx::encode_labels(&labels)).unwrap();
    }
    sums(dir);
}

/// Writes SHA256SUMS for the four IDX files as they are now.
fn sums(dir: &Path) {
    let lines: Vec<String> = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        .iter()
        .map(|f| format!("{}  {f}", hex(&Sha256::digest(std::fs::read(dir.join(f)).unwrap()))))
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), lines.join("\n")).unwrap();
}

/// A valid CIFAR-10 folder (4 records per batch).
fn cifar10(dir: &Path) {
    let labels = [0u8, 1, 2, 3];
    let pixels = vec![100u8; 4 * 3072];
    for f in cifar::TRAIN_FILES.iter().chain([&cifar::TEST_FILE]) {
        std::fs::write(dir.join(f), cifar::encode_batch(&pixels, &labels)).unwrap();
    }
}

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";

/// Replaces `dir/name` by `dir/name.gz`, its gzipped bytes.
fn to_gz(dir: &Path, name: &str) {
    let raw = std::fs::read(dir.join(name)).unwrap();
    std::fs::write(dir.join(format!("{name}.gz")), gz(&raw)).unwrap();
    std::fs::remove_file(dir.join(name)).unwrap();
}

/// Inverts the bits of the byte at `at` in `path`.
fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0xff;
    std::fs::write(path, b).unwrap();
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Each case damages a fresh folder; the loader's error (or `Ok`) is the snapshot.
type Case = (&'static str, DatasetKind, fn(&Path));

fn cases() -> Vec<Case> {
    vec![
        ("data_01_idx_truncated", DatasetKind::Mnist, |d| {
            mnist(d);
            let b = std::fs::read(d.join(TRAIN_IMAGES)).unwrap();
            std::fs::write(d.join(TRAIN_IMAGES), &b[..b.len() - 100]).unwrap();
        }),
        ("data_02_idx_longer_than_declared", DatasetKind::Mnist, |d| {
            mnist(d);
            let mut b = std::fs::read(d.join(TRAIN_IMAGES)).unwrap();
            b.extend([0; 10]);
            std::fs::write(d.join(TRAIN_IMAGES), b).unwrap();
        }),
        ("data_03_gzip_truncated", DatasetKind::Mnist, |d| {
            mnist(d);
            let g = gz(&std::fs::read(d.join(TRAIN_IMAGES)).unwrap());
            std::fs::remove_file(d.join(TRAIN_IMAGES)).unwrap();
            std::fs::write(d.join(format!("{TRAIN_IMAGES}.gz")), &g[..g.len() / 2]).unwrap();
        }),
        ("data_04_gz_name_not_gzip", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::remove_file(d.join(TRAIN_IMAGES)).unwrap();
            std::fs::write(d.join(format!("{TRAIN_IMAGES}.gz")), b"<html>404 Not Found</html>").unwrap();
        }),
        ("data_05_images_and_labels_swapped", DatasetKind::Mnist, |d| {
            mnist(d);
            let (i, l) = (std::fs::read(d.join(TRAIN_IMAGES)).unwrap(), std::fs::read(d.join(TRAIN_LABELS)).unwrap());
            std::fs::write(d.join(TRAIN_IMAGES), l).unwrap();
            std::fs::write(d.join(TRAIN_LABELS), i).unwrap();
        }),
        ("data_06_wrong_magic", DatasetKind::Mnist, |d| {
            mnist(d);
            let mut b = std::fs::read(d.join(TRAIN_IMAGES)).unwrap();
            b[3] = 0x01;
            std::fs::write(d.join(TRAIN_IMAGES), b).unwrap();
        }),
        ("data_07_image_label_count_mismatch", DatasetKind::Mnist, |d| {
            mnist(d);
            let labels: Vec<u8> = (0..19).map(|i| (i % 10) as u8).collect();
            std::fs::write(d.join(TRAIN_LABELS), idx::encode_labels(&labels)).unwrap();
            sums(d);
        }),
        ("data_08_label_out_of_range", DatasetKind::Mnist, |d| {
            mnist(d);
            let mut labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
            labels[7] = 200;
            std::fs::write(d.join(TRAIN_LABELS), idx::encode_labels(&labels)).unwrap();
        }),
        ("data_09_empty_file", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::write(d.join(TRAIN_IMAGES), b"").unwrap();
        }),
        ("data_10_directory_in_place_of_file", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::remove_file(d.join(TRAIN_IMAGES)).unwrap();
            std::fs::create_dir(d.join(TRAIN_IMAGES)).unwrap();
        }),
        ("data_11_fifo_in_place_of_file", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::remove_file(d.join(TRAIN_LABELS)).unwrap();
            mkfifo(&d.join(TRAIN_LABELS));
        }),
        ("data_12_one_file_missing", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
        }),
        ("data_13_empty_folder", DatasetKind::Mnist, |_| {}),
        ("data_14_header_sizes_overflow", DatasetKind::Mnist, |d| {
            mnist(d);
            let mut h = vec![0, 0, 8, 3];
            for x in [u32::MAX, u32::MAX, u32::MAX] {
                h.extend(x.to_be_bytes());
            }
            std::fs::write(d.join(TRAIN_IMAGES), h).unwrap();
        }),
        ("data_15_wrong_image_shape_with_matching_sums", DatasetKind::FashionMnist, |d| {
            let mut lines = Vec::new();
            for (split, n) in [("train", 20usize), ("t10k", 10)] {
                let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
                let img = idx::encode_images(&idx::Images { n, rows: 14, cols: 56, pixels: vec![7; n * 784] });
                for (name, bytes) in
                    [(format!("{split}-images-idx3-ubyte"), img), (format!("{split}-labels-idx1-ubyte"), idx::encode_labels(&labels))]
                {
                    lines.push(format!("{}  {name}", hex(&Sha256::digest(&bytes))));
                    std::fs::write(d.join(name), bytes).unwrap();
                }
            }
            std::fs::write(d.join("SHA256SUMS"), lines.join("\n")).unwrap();
        }),
        ("data_16_checksum_mismatch", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::write(d.join("SHA256SUMS"), format!("{}  {TRAIN_IMAGES}\n", "ab".repeat(32))).unwrap();
        }),
        ("data_17_random_bytes", DatasetKind::Mnist, |d| {
            mnist(d);
            let junk: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
            std::fs::write(d.join(TRAIN_IMAGES), junk).unwrap();
        }),
        ("data_18_labels_truncated_header", DatasetKind::Mnist, |d| {
            mnist(d);
            std::fs::write(d.join(TRAIN_LABELS), [0u8, 0, 8]).unwrap();
        }),
        ("data_19_cifar_truncated_batch", DatasetKind::Cifar10, |d| {
            cifar10(d);
            let b = std::fs::read(d.join(cifar::TEST_FILE)).unwrap();
            std::fs::write(d.join(cifar::TEST_FILE), &b[..b.len() - 5]).unwrap();
        }),
        ("data_20_cifar_bad_label", DatasetKind::Cifar10, |d| {
            cifar10(d);
            let mut b = std::fs::read(d.join(cifar::TRAIN_FILES[2])).unwrap();
            b[cifar::RECORD] = 10;
            std::fs::write(d.join(cifar::TRAIN_FILES[2]), b).unwrap();
        }),
        ("data_21_cifar_missing_batch", DatasetKind::Cifar10, |d| {
            cifar10(d);
            std::fs::remove_file(d.join(cifar::TRAIN_FILES[4])).unwrap();
        }),
        ("data_22_cifar_empty_batch", DatasetKind::Cifar10, |d| {
            cifar10(d);
            std::fs::write(d.join(cifar::TRAIN_FILES[0]), b"").unwrap();
        }),
        ("data_23_cifar_python_pickle_instead", DatasetKind::Cifar10, |d| {
            cifar10(d);
            std::fs::write(d.join(cifar::TEST_FILE), b"\x80\x04\x95pickled python batch, not the binary version").unwrap();
        }),
        // Something by a file's own name that is not a file never falls back to the `.gz` beside it.
        ("data_24_fifo_labels_beside_gz", DatasetKind::Mnist, |d| {
            mnist(d);
            to_gz(d, TRAIN_LABELS);
            mkfifo(&d.join(TRAIN_LABELS));
        }),
        ("data_25_symlink_loop_labels_beside_gz", DatasetKind::Mnist, |d| {
            mnist(d);
            to_gz(d, TRAIN_LABELS);
            std::os::unix::fs::symlink(TRAIN_LABELS, d.join(TRAIN_LABELS)).unwrap();
        }),
        ("data_26_dangling_symlink_beside_gz", DatasetKind::Mnist, |d| {
            mnist(d);
            to_gz(d, TRAIN_IMAGES);
            std::os::unix::fs::symlink("elsewhere/train-images", d.join(TRAIN_IMAGES)).unwrap();
        }),
        // A raw file is checksummed like a `.gz`: one flipped pixel byte is refused.
        ("data_27_raw_pixel_byte_flipped", DatasetKind::Mnist, |d| {
            mnist(d);
            flip(&d.join(TRAIN_IMAGES), 16 + 500);
        }),
        ("data_28_gz_pixel_byte_flipped", DatasetKind::Mnist, |d| {
            mnist(d);
            flip(&d.join(TRAIN_IMAGES), 16 + 500);
            to_gz(d, TRAIN_IMAGES);
        }),
        // Without SHA256SUMS, files named like the official ones are held to the official checksums.
        ("data_29_raw_named_like_official_without_sums", DatasetKind::FashionMnist, |d| {
            mnist(d);
            std::fs::remove_file(d.join("SHA256SUMS")).unwrap();
        }),
    ]
}

#[test]
fn every_damaged_dataset_gives_an_error_naming_the_file() {
    let root = std::env::temp_dir().join(format!("pipe-damaged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (name, kind, damage) in cases() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        damage(&dir);
        let got = std::panic::catch_unwind(|| data::locate(kind, Some(&dir)).and_then(|d| data::load_raw(kind, &d).map(|_| ())));
        let err = match got {
            Err(_) => panic!("{name}: the loader panicked"),
            Ok(Ok(())) => panic!("{name}: damaged data was accepted"),
            Ok(Err(e)) => e.to_string().replace(&dir.display().to_string(), "<DIR>"),
        };
        assert!(err.contains("<DIR>"), "{name}: the message names the file or folder: {err}");
        insta::assert_snapshot!(name, err);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Pipeline paths that are not a pipeline's YAML text.
#[test]
fn every_damaged_pipeline_file_gives_an_error_naming_it() {
    let root = std::env::temp_dir().join(format!("pipe-damaged-yaml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    type Make = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Make)> = vec![
        ("file_01_directory", Box::new(|p| std::fs::create_dir(p).unwrap())),
        ("file_02_fifo", Box::new(mkfifo)),
        ("file_03_binary", Box::new(|p| std::fs::write(p, b"\x7fELF\x02\x01\x01\0\0\0\xff\xfe").unwrap())),
        ("file_04_latin1_text", Box::new(|p| std::fs::write(p, b"stages:\n  caf\xe9:\n    kind: command\n").unwrap())),
        (
            "file_05_too_large",
            Box::new(|p| {
                let f = std::fs::File::create(p).unwrap();
                f.set_len(17 << 20).unwrap();
            }),
        ),
        ("file_06_missing", Box::new(|_| {})),
    ];
    let registry = pipe_kinds::builtin();
    for (name, make) in cases {
        let path: PathBuf = root.join(format!("{name}.yaml"));
        make(&path);
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipe::config::load(&path, &registry, &[])));
        let err = match got {
            Err(_) => panic!("{name}: the loader panicked"),
            Ok(Ok(_)) => panic!("{name}: accepted"),
            Ok(Err(e)) => pipe::error::render(&e).replace(&root.display().to_string(), "<DIR>"),
        };
        assert!(err.contains(&format!("<DIR>/{name}.yaml")), "{name}: {err}");
        insta::assert_snapshot!(name, err);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The checksum a folder's SHA256SUMS or the official table gives holds for a raw file exactly as
/// for its `.gz` (the sums are of the decompressed bytes), and the error says which sum and what to do.
#[test]
fn raw_and_gzipped_files_are_held_to_the_same_checksums() {
    let root = std::env::temp_dir().join(format!("pipe-damaged-sums-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (case, gzipped, declared) in [("raw", false, true), ("gz", true, true), ("raw-official", false, false), ("gz-official", true, false)] {
        let d = root.join(case);
        std::fs::create_dir_all(&d).unwrap();
        mnist(&d);
        let want = if declared {
            hex(&Sha256::digest(std::fs::read(d.join(TRAIN_IMAGES)).unwrap()))
        } else {
            std::fs::remove_file(d.join("SHA256SUMS")).unwrap();
            data::official_sha256(DatasetKind::Mnist, TRAIN_IMAGES).unwrap().to_string()
        };
        flip(&d.join(TRAIN_IMAGES), 16 + 28 * 14);
        let got = hex(&Sha256::digest(std::fs::read(d.join(TRAIN_IMAGES)).unwrap()));
        let (file, of) = if gzipped {
            to_gz(&d, TRAIN_IMAGES);
            (format!("{TRAIN_IMAGES}.gz"), "its decompressed bytes")
        } else {
            (TRAIN_IMAGES.to_string(), "its bytes")
        };
        let err = data::load_raw(DatasetKind::Mnist, &d).err().unwrap_or_else(|| panic!("{case}: a flipped byte was accepted")).to_string();
        let dir = d.display();
        let (source, fix) = if declared {
            (
                format!("from {dir}/SHA256SUMS"),
                "the file is damaged, or SHA256SUMS is out of date: restore the file, or update SHA256SUMS if it changed on purpose".to_string(),
            )
        } else {
            (
                "the official MNIST checksum".to_string(),
                format!(
                    "the file is damaged or not the official one: download it again (`pipe data fetch mnist --dir {dir}`), or, for other data in this format, list its sha256 in {dir}/SHA256SUMS"
                ),
            )
        };
        assert_eq!(err, format!("{dir}/{file}: checksum mismatch: the sha256 of {of} is {got}, expected {want} ({source}); {fix}"), "{case}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A FIFO or a link loop by a file's own name, beside that file's `.gz`: an error naming it, at once.
#[test]
fn a_labels_entry_that_is_not_a_file_is_named_not_skipped_for_its_gz() {
    let root = std::env::temp_dir().join(format!("pipe-damaged-beside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 2] = [
        ("fifo", |p| mkfifo(p), "is not a regular file (a pipe, socket or device)"),
        (
            "loop",
            |p| std::os::unix::fs::symlink(p.file_name().unwrap(), p).unwrap(),
            "is a symbolic link that cannot be followed, in a loop or to nothing",
        ),
    ];
    for (case, make, what) in cases {
        let d = root.join(case);
        std::fs::create_dir_all(&d).unwrap();
        mnist(&d);
        to_gz(&d, TRAIN_LABELS);
        make(&d.join(TRAIN_LABELS));
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = d.clone();
        std::thread::spawn(move || {
            let got = data::locate(DatasetKind::Mnist, Some(&dir)).and_then(|found| data::load_raw(DatasetKind::Mnist, &found).map(|_| ()));
            let _ = tx.send(got.map_err(|e| e.to_string()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("{case}: the loader hangs"));
        let err = got.err().unwrap_or_else(|| panic!("{case}: the `.gz` beside it was read instead"));
        let dir = d.display();
        assert!(err.starts_with(&format!("{dir}: MNIST files are incomplete here: {TRAIN_LABELS} {what}")), "{case}: {err}");
        assert!(err.contains(&format!("it hides {TRAIN_LABELS}.gz beside it: remove or replace it")), "{case}: {err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
