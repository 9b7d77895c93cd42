//! Datasets for one-class anomaly detection: locate and verify the files, decode them, preprocess,
//! split one class off as "normal", and save the result as one safetensors file.

pub mod cifar;
pub mod fetch;
pub mod idx;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use crate::{io_err, Error, Result};
use idx::Images;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    Cifar10,
}

impl DatasetKind {
    pub const NAMES: &'static [&'static str] = &["mnist", "fashion-mnist", "cifar10"];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            _ => Err(Error::Data(format!("unknown dataset `{s}`; use one of {}", Self::NAMES.join(", ")))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Display name used in reports and plot titles.
    pub fn title(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Cifar10 => "CIFAR-10",
        }
    }

    /// Folder names searched under a data root.
    fn folders(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &["mnist", "MNIST"],
            DatasetKind::FashionMnist => &["fashion-mnist", "fashion_mnist", "FashionMNIST"],
            DatasetKind::Cifar10 => &["cifar10", "cifar-10", "cifar-10-batches-bin"],
        }
    }

    /// Files a complete copy must hold (without `.gz`).
    pub fn files(self) -> Vec<&'static str> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                vec!["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
            }
            DatasetKind::Cifar10 => cifar::TRAIN_FILES.iter().copied().chain([cifar::TEST_FILE]).collect(),
        }
    }

    pub fn channels(self) -> i64 {
        if self == DatasetKind::Cifar10 {
            3
        } else {
            1
        }
    }
}

/// sha256 of the DECOMPRESSED official files (gzip headers differ between mirrors).
pub fn official_sha256(kind: DatasetKind, file: &str) -> Option<&'static str> {
    let t: &[(&str, &str)] = match kind {
        DatasetKind::Mnist => &[
            ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ],
        DatasetKind::FashionMnist => &[
            ("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            ("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            ("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            ("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ],
        DatasetKind::Cifar10 => &[],
    };
    t.iter().find(|(f, _)| *f == file).map(|(_, h)| *h)
}

/// Where datasets are looked for, in order: the explicit `data_dir`, `$PIPE_DATA_DIR`,
/// `~/.cache/pipe/data` (where `pipe data fetch` writes), `/usr/share/datasets` (Debian's
/// `dataset-fashion-mnist`), and `../shared/data` (the team's shared checkout).
pub fn search_roots(data_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(d) = data_dir {
        roots.push(d.to_path_buf());
        return roots;
    }
    if let Some(d) = std::env::var_os("PIPE_DATA_DIR") {
        roots.push(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".cache/pipe/data"));
    }
    roots.push(PathBuf::from("/usr/share/datasets"));
    roots.push(PathBuf::from("../shared/data"));
    roots
}

/// Every path whose presence or content can change what [`locate`] finds and [`identity`]
/// returns for `kind` (each candidate folder's files, plain and `.gz`, and its `SHA256SUMS`), and
/// the environment variables [`search_roots`] reads: what a cache of the identity must watch.
pub fn watch(kind: DatasetKind, data_dir: Option<&Path>) -> (Vec<PathBuf>, Vec<String>) {
    let mut paths = Vec::new();
    for root in search_roots(data_dir) {
        for dir in std::iter::once(root.clone()).chain(kind.folders().iter().map(|f| root.join(f))) {
            for f in kind.files() {
                paths.push(dir.join(f));
                paths.push(dir.join(format!("{f}.gz")));
            }
            paths.push(dir.join("SHA256SUMS"));
        }
    }
    let vars = if data_dir.is_some() { Vec::new() } else { vec!["PIPE_DATA_DIR".to_string(), "HOME".to_string()] };
    (paths, vars)
}

/// Finds the folder holding every file of `kind` (each plain or `.gz`).
///
/// Errors: no folder has them all. Where a folder holds some of them, the error names that folder
/// and, per file, what is wrong (missing, a directory, not a regular file, unreadable), since
/// "not found" would send the user looking in the wrong place.
pub fn locate(kind: DatasetKind, data_dir: Option<&Path>) -> Result<PathBuf> {
    let roots = search_roots(data_dir);
    let mut tried = Vec::new();
    let mut partial: Option<(PathBuf, Vec<String>)> = None;
    for root in &roots {
        for dir in std::iter::once(root.clone()).chain(kind.folders().iter().map(|f| root.join(f))) {
            if kind.files().iter().all(|f| file_in(&dir, f).is_some()) {
                return Ok(dir);
            }
            let problems: Vec<(bool, String)> = kind.files().iter().map(|f| file_problem(&dir, f)).collect();
            if partial.is_none() && problems.iter().any(|(present, _)| *present) {
                partial = Some((dir.clone(), problems.into_iter().filter(|(_, p)| !p.is_empty()).map(|(_, p)| p).collect()));
            }
            tried.push(dir.display().to_string());
        }
    }
    if let Some((dir, problems)) = partial {
        return Err(Error::Data(format!(
            "{}: {} files are incomplete here: {}. Replace them (`pipe data fetch {} --dir {}` downloads them), or point `data_dir` elsewhere",
            dir.display(),
            kind.title(),
            problems.join("; "),
            kind.name(),
            dir.display()
        )));
    }
    Err(Error::Data(format!(
        "{} not found; looked in: {}. Set the stage's `data_dir` param or PIPE_DATA_DIR, or run `pipe data fetch {}`",
        kind.title(),
        tried.join(", "),
        kind.name()
    )))
}

/// The file holding `name` in `dir`: `name` itself wherever anything by that name is there (a
/// file, a link, a pipe), else `name.gz`; `Ok(None)` when neither is there.
///
/// Errors, as (the entry, what is wrong with it): the entry is not a regular file once links are
/// followed (a directory, a FIFO, a socket or device, a link in a loop or to nothing). Such an
/// entry never falls back to the `.gz` beside it (which would read other data than the folder
/// shows) and is never opened (opening a FIFO blocks until someone writes to it): its type is
/// read first.
fn pick(dir: &Path, name: &str) -> std::result::Result<Option<PathBuf>, (PathBuf, String)> {
    let gz = dir.join(format!("{name}.gz"));
    for p in [dir.join(name), gz.clone()] {
        // `symlink_metadata`: a link is there even where it leads nowhere.
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        let file = p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        let beside = if p != gz && std::fs::symlink_metadata(&gz).is_ok() {
            format!("; it hides {name}.gz beside it: remove or replace it")
        } else {
            String::new()
        };
        return match std::fs::metadata(&p) {
            Err(e) => Err((p, format!("{file} is a symbolic link that cannot be followed, in a loop or to nothing ({e}){beside}"))),
            Ok(m) if m.is_dir() => Err((p, format!("{file} is a directory, not a file{beside}"))),
            Ok(m) if !m.is_file() => Err((p, format!("{file} is not a regular file (a pipe, socket or device){beside}"))),
            Ok(_) => Ok(Some(p)),
        };
    }
    Ok(None)
}

fn file_in(dir: &Path, name: &str) -> Option<PathBuf> {
    pick(dir, name).ok().flatten()
}

/// (whether anything by that name is there, what is wrong with it: empty when it is a readable file).
fn file_problem(dir: &Path, name: &str) -> (bool, String) {
    match pick(dir, name) {
        Ok(None) => (false, format!("{name} (or {name}.gz) is missing")),
        Err((_, problem)) => (true, problem),
        Ok(Some(p)) => match std::fs::File::open(&p) {
            Ok(_) => (true, String::new()),
            Err(e) => (true, format!("{} cannot be read ({e})", p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default())),
        },
    }
}

/// Reads a file, decompressing gzip (detected by its magic bytes, whatever the extension).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io_err(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Data(format!("{}: gzip stream is damaged or truncated ({e}); download it again", path.display())))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Checksums a folder declares for its files in `SHA256SUMS` (sha256sum format, decompressed bytes).
fn declared_sums(dir: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("SHA256SUMS")) else { return BTreeMap::new() };
    text.lines()
        .filter_map(|l| {
            let (h, f) = l.split_once(char::is_whitespace)?;
            Some((f.trim().trim_start_matches('*').trim_end_matches(".gz").to_string(), h.to_lowercase()))
        })
        .collect()
}

/// The content identity of the dataset in `dir`, for cache keys: one line per file with the sha256
/// of its decompressed bytes as the folder's `SHA256SUMS` or the official table declares it (so the
/// files are not read: `load_raw` verifies them against the same value when it runs), or, for a
/// file with no declared checksum, the sha256 of its bytes as stored. Never the folder's path or
/// the files' times, so the same data anywhere gives the same identity.
///
/// Errors: a file without a declared checksum that cannot be read.
pub fn identity(kind: DatasetKind, dir: &Path) -> Result<String> {
    let sums = declared_sums(dir);
    let mut h = Sha256::new();
    h.update(kind.name().as_bytes());
    for name in kind.files() {
        let line = match sums.get(name).map(String::as_str).or_else(|| official_sha256(kind, name)) {
            Some(sha) => format!("\n{name} decompressed-sha256 {sha}"),
            None => {
                let path = file_in(dir, name).ok_or_else(|| Error::Data(format!("{}: missing {name}", dir.display())))?;
                let mut f = std::fs::File::open(&path).map_err(io_err(&path))?;
                let mut fh = Sha256::new();
                std::io::copy(&mut f, &mut fh).map_err(io_err(&path))?;
                format!("\n{name} file-sha256 {}", hex(&fh.finalize()))
            }
        };
        h.update(line.as_bytes());
    }
    Ok(format!("{}:{}", kind.name(), &hex(&h.finalize())[..32]))
}

/// Reads one file (decompressed). Errors: it is missing, or not a regular file (checked again
/// here, before it is opened: the folder may have changed since [`locate`]).
fn read_file(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = match pick(dir, name) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(Error::Data(format!("{}: missing {name}", dir.display()))),
        Err((p, problem)) => {
            return Err(Error::Data(format!(
                "{}: {problem}. Put the dataset file there (`pipe data fetch` downloads it), or remove the entry",
                p.display()
            )))
        }
    };
    let bytes = read_maybe_gz(&path)?;
    Ok((path, bytes))
}

/// Verifies decompressed bytes against SHA256SUMS or the official checksum; returns whether one was known.
/// Called after parsing, so a truncated or mislabelled file gets the more specific message.
///
/// A raw file and a `.gz` are held to the same checksum: both are of the decompressed bytes (the
/// official table's were computed from the official files' decompressed content), so a damaged
/// byte is found whichever form the folder keeps.
fn verify(kind: DatasetKind, path: &Path, name: &str, bytes: &[u8], sums: &BTreeMap<String, String>) -> Result<bool> {
    let declared = sums.get(name).map(String::as_str);
    let Some(want) = declared.or_else(|| official_sha256(kind, name)) else { return Ok(false) };
    let got = hex(&Sha256::digest(bytes));
    if got != want {
        let of = if path.extension().is_some_and(|e| e == "gz") { "its decompressed bytes" } else { "its bytes" };
        let dir = path.parent().unwrap_or(Path::new("."));
        let (source, fix) = match declared {
            Some(_) => (
                format!("from {}", dir.join("SHA256SUMS").display()),
                "the file is damaged, or SHA256SUMS is out of date: restore the file, or update SHA256SUMS if it changed on purpose".to_string(),
            ),
            None => (
                format!("the official {} checksum", kind.title()),
                format!(
                    "the file is damaged or not the official one: download it again (`pipe data fetch {} --dir {}`), or, for other data in this format, list its sha256 in {}",
                    kind.name(),
                    dir.display(),
                    dir.join("SHA256SUMS").display()
                ),
            ),
        };
        return Err(Error::Data(format!("{}: checksum mismatch: the sha256 of {of} is {got}, expected {want} ({source}); {fix}", path.display())));
    }
    Ok(true)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The whole dataset as decoded images and labels.
pub struct Raw {
    pub kind: DatasetKind,
    pub dir: PathBuf,
    pub train: Images,
    pub train_labels: Vec<u8>,
    pub test: Images,
    pub test_labels: Vec<u8>,
    /// Files loaded without a known checksum (neither official nor in SHA256SUMS).
    pub unverified: Vec<String>,
}

pub fn load_raw(kind: DatasetKind, dir: &Path) -> Result<Raw> {
    let sums = declared_sums(dir);
    let mut unverified = Vec::new();
    let mut check = |path: &Path, name: &str, bytes: &[u8]| -> Result<()> {
        if !verify(kind, path, name, bytes, &sums)? {
            unverified.push(name.to_string());
        }
        Ok(())
    };
    let (train, train_labels, test, test_labels) = match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let mut images = |name: &str| -> Result<Images> {
                let (path, bytes) = read_file(dir, name)?;
                let img = idx::read_images(&path, &bytes)?;
                if (img.rows, img.cols) != (28, 28) {
                    return Err(Error::Data(format!(
                        "{}: images are {}x{}; {} images are 28x28: the file is another dataset or damaged",
                        path.display(),
                        img.rows,
                        img.cols,
                        kind.title()
                    )));
                }
                check(&path, name, &bytes)?;
                Ok(img)
            };
            let train = images("train-images-idx3-ubyte")?;
            let test = images("t10k-images-idx3-ubyte")?;
            let mut labels = |name: &str| -> Result<Vec<u8>> {
                let (path, bytes) = read_file(dir, name)?;
                let l = idx::read_labels(&path, &bytes)?;
                check(&path, name, &bytes)?;
                Ok(l)
            };
            let train_labels = labels("train-labels-idx1-ubyte")?;
            let test_labels = labels("t10k-labels-idx1-ubyte")?;
            (train, train_labels, test, test_labels)
        }
        DatasetKind::Cifar10 => {
            let mut batch = |name: &str| -> Result<(Images, Vec<u8>)> {
                let (path, bytes) = read_file(dir, name)?;
                let b = cifar::read_batch(&path, &bytes)?;
                check(&path, name, &bytes)?;
                Ok(b)
            };
            let mut pixels = Vec::new();
            let mut labels = Vec::new();
            for f in cifar::TRAIN_FILES {
                let (img, l) = batch(f)?;
                pixels.extend(img.pixels);
                labels.extend(l);
            }
            let train = Images { n: labels.len(), rows: 32, cols: 32, pixels };
            let (test, test_labels) = batch(cifar::TEST_FILE)?;
            (train, labels, test, test_labels)
        }
    };
    for (what, img, labels) in [("train", &train, &train_labels), ("test", &test, &test_labels)] {
        if img.n != labels.len() {
            return Err(Error::Data(format!(
                "{}: {what} images ({}) and labels ({}) differ in count; the files do not belong together",
                dir.display(),
                img.n,
                labels.len()
            )));
        }
    }
    Ok(Raw { kind, dir: dir.to_path_buf(), train, train_labels, test, test_labels, unverified })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// Pixels / 255.
    Unit,
    /// Ruff et al.: per-image global contrast normalisation (L1), then min-max scaling with the
    /// min and max of the normal class's training images after GCN.
    GcnL1MinMax,
}

impl Preprocess {
    pub const NAMES: &'static [&'static str] = &["gcn-l1-minmax", "unit", "auto"];
    /// `auto` is each dataset's published protocol: GCN + min-max for MNIST and CIFAR-10 (Ruff et
    /// al.), plain [0, 1] for Fashion-MNIST (the re-experiment).
    pub fn parse_for(s: &str, kind: DatasetKind) -> Result<Self> {
        match (s, kind) {
            ("auto", DatasetKind::FashionMnist) => Ok(Preprocess::Unit),
            ("auto", _) => Ok(Preprocess::GcnL1MinMax),
            _ => Self::parse(s),
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unit" => Ok(Preprocess::Unit),
            "gcn-l1-minmax" => Ok(Preprocess::GcnL1MinMax),
            _ => Err(Error::Data(format!("unknown preprocessing `{s}`; use one of {}", Self::NAMES.join(", ")))),
        }
    }
}

/// Global contrast normalisation with the L1 norm, per image: (x - mean) / mean(|x - mean|).
pub fn gcn_l1(x: &Tensor) -> Tensor {
    let n = x.size()[0];
    let flat = x.view([n, -1]);
    let centred = &flat - flat.mean_dim(1, true, Kind::Float);
    let scale = centred.abs().mean_dim(1, true, Kind::Float).clamp_min(1e-12);
    (centred / scale).view_as(x)
}

/// The prepared one-class dataset.
pub struct OneClass {
    /// Normal-class training images, [N, C, H, W] float.
    pub train_x: Tensor,
    /// Held-out normal-class training images, [H, C, H, W] (H may be 0): never trained on, used
    /// to fit thresholds.
    pub holdout_x: Tensor,
    /// Full test split, [M, C, H, W].
    pub test_x: Tensor,
    /// 0 = normal, 1 = anomaly.
    pub test_label: Tensor,
    /// Original class of each test image.
    pub test_class: Tensor,
    /// Min and max used for scaling (GCN) or [0, 1].
    pub scale: Tensor,
}

fn to_tensor(img: &Images, channels: i64, take: &[usize]) -> Tensor {
    let per = (img.rows * img.cols) * channels as usize;
    let mut buf = Vec::with_capacity(take.len() * per);
    for &i in take {
        buf.extend_from_slice(&img.pixels[i * per..(i + 1) * per]);
    }
    Tensor::from_slice(&buf).view([take.len() as i64, channels, img.rows as i64, img.cols as i64]).to_kind(Kind::Float) / 255.0
}

/// Splits off `normal_class` for training; the whole test split is labelled normal 0 / anomaly 1.
/// `limit_train`/`limit_test` (0 = all) keep the first images, for quick runs. No held-out images.
pub fn one_class(raw: &Raw, normal_class: u8, pre: Preprocess, limit_train: usize, limit_test: usize) -> Result<OneClass> {
    one_class_with_holdout(raw, normal_class, pre, limit_train, limit_test, 0.0, 0)
}

/// Like [`one_class`], and moves a seeded `holdout` fraction (in [0, 0.5]) of the normal training
/// images into `holdout_x`: training never sees them, and thresholds are fitted on them, so a
/// threshold's false-positive rate on new normal images is what its level says (split conformal
/// calibration; fitting on the training images themselves is optimistic). Preprocessing statistics
/// (GCN min-max) come from the remaining training images only.
///
/// Errors: a fraction outside [0, 0.5], or one that leaves fewer than 2 images on either side.
pub fn one_class_with_holdout(
    raw: &Raw,
    normal_class: u8,
    pre: Preprocess,
    limit_train: usize,
    limit_test: usize,
    holdout: f64,
    seed: u64,
) -> Result<OneClass> {
    if normal_class > 9 {
        return Err(Error::Data(format!("normal_class {normal_class} is out of range; {} has classes 0..=9", raw.kind.title())));
    }
    let mut train_idx: Vec<usize> = (0..raw.train.n).filter(|&i| raw.train_labels[i] == normal_class).collect();
    if train_idx.is_empty() {
        return Err(Error::Data(format!("{}: no training images of class {normal_class}", raw.dir.display())));
    }
    if limit_train > 0 {
        train_idx.truncate(limit_train);
    }
    let mut test_idx: Vec<usize> = (0..raw.test.n).collect();
    if limit_test > 0 {
        test_idx.truncate(limit_test);
    }
    if !(0.0..=0.5).contains(&holdout) {
        return Err(Error::Data(format!("holdout {holdout} must be in [0, 0.5] (a fraction of the normal training images)")));
    }
    let mut holdout_idx: Vec<usize> = Vec::new();
    if holdout > 0.0 {
        let n_hold = (holdout * train_idx.len() as f64).round() as usize;
        if n_hold < 2 || train_idx.len() - n_hold < 2 {
            return Err(Error::Data(format!(
                "holdout {holdout} of {} training images leaves {n_hold} held out and {} for training; each needs at least 2",
                train_idx.len(),
                train_idx.len() - n_hold
            )));
        }
        let perm = crate::rng::Rng::new(seed).permutation(train_idx.len());
        let mut held: Vec<usize> = perm[..n_hold].iter().map(|&j| train_idx[j as usize]).collect();
        held.sort_unstable();
        train_idx.retain(|i| held.binary_search(i).is_err());
        holdout_idx = held;
    }
    let c = raw.kind.channels();
    let mut train_x = to_tensor(&raw.train, c, &train_idx);
    let mut holdout_x = to_tensor(&raw.train, c, &holdout_idx);
    let mut test_x = to_tensor(&raw.test, c, &test_idx);
    let scale = match pre {
        Preprocess::Unit => Tensor::from_slice(&[0.0f32, 1.0]),
        Preprocess::GcnL1MinMax => {
            train_x = gcn_l1(&train_x);
            test_x = gcn_l1(&test_x);
            let (lo, hi) = (train_x.min(), train_x.max());
            let range = (&hi - &lo).clamp_min(1e-12);
            train_x = (&train_x - &lo) / &range;
            test_x = (&test_x - &lo) / &range;
            if !holdout_idx.is_empty() {
                holdout_x = (gcn_l1(&holdout_x) - &lo) / &range;
            }
            Tensor::stack(&[lo, hi], 0)
        }
    };
    let classes: Vec<i64> = test_idx.iter().map(|&i| raw.test_labels[i] as i64).collect();
    let labels: Vec<i64> = classes.iter().map(|&k| i64::from(k != normal_class as i64)).collect();
    if !labels.contains(&0) || !labels.contains(&1) {
        return Err(Error::Data(format!(
            "the test split (first {} images) lacks {}; raise limit_test",
            test_idx.len(),
            if labels.contains(&0) { "anomalies" } else { "normal images" }
        )));
    }
    Ok(OneClass { train_x, holdout_x, test_x, test_label: Tensor::from_slice(&labels), test_class: Tensor::from_slice(&classes), scale })
}

impl OneClass {
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(&str, &Tensor)> = vec![("train_x", &self.train_x)];
        // Absent when empty: a dataset without a held-out split is stored as before.
        if self.holdout_x.size()[0] > 0 {
            named.push(("holdout_x", &self.holdout_x));
        }
        named.extend([("test_x", &self.test_x), ("test_label", &self.test_label), ("test_class", &self.test_class), ("scale", &self.scale)]);
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let mut m: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let mut take = |k: &str| m.remove(k).ok_or_else(|| Error::Data(format!("{}: not a prepared dataset (no tensor `{k}`)", path.display())));
        let train_x = take("train_x")?;
        let empty = |t: &Tensor| {
            let mut shape = t.size();
            shape[0] = 0;
            Tensor::zeros(&shape, (t.kind(), t.device()))
        };
        let holdout_x = m.remove("holdout_x").unwrap_or_else(|| empty(&train_x));
        let mut take = |k: &str| m.remove(k).ok_or_else(|| Error::Data(format!("{}: not a prepared dataset (no tensor `{k}`)", path.display())));
        Ok(OneClass {
            train_x,
            holdout_x,
            test_x: take("test_x")?,
            test_label: take("test_label")?,
            test_class: take("test_class")?,
            scale: take("scale")?,
        })
    }
}
