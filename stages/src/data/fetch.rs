//! Downloads datasets from their official mirrors over HTTPS or HTTP (reqwest): resumable (a
//! `.part` file and a `Range` request), verified (md5 of the published archives, then the loaders'
//! sha256 of the decompressed bytes), with progress reported to the caller.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::DatasetKind;
use crate::{io_err, Error, Result};

/// Where a dataset's files come from: a base URL and (file name, md5 of the file as served).
pub struct Source {
    pub base: String,
    pub files: Vec<(String, String)>,
}

/// The official mirrors (HTTPS where the host serves it: torchvision's MNIST mirror and Toronto's
/// CIFAR-10 page; Zalando's Fashion-MNIST bucket is a plain-HTTP S3 website) and the published md5
/// sums of the files they serve.
pub fn official(kind: DatasetKind) -> Source {
    let f = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    match kind {
        DatasetKind::Mnist => Source {
            base: "https://ossci-datasets.s3.amazonaws.com/mnist/".into(),
            files: f(&[
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ]),
        },
        DatasetKind::FashionMnist => Source {
            base: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/".into(),
            files: f(&[
                ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
            ]),
        },
        DatasetKind::Cifar10 => {
            Source { base: "https://www.cs.toronto.edu/~kriz/".into(), files: f(&[("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")]) }
        }
    }
}

/// Download progress: (file, bytes so far, total bytes if known).
pub type OnProgress<'a> = &'a dyn Fn(&str, u64, Option<u64>);

fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Fetches every file of `source` into `dest` (resuming `.part` files), verifies md5, and unpacks
/// tar.gz archives. Returns the folder holding the dataset files.
pub fn fetch(source: &Source, dest: &Path, progress: OnProgress) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    for (name, md5) in &source.files {
        let target = dest.join(name);
        if target.is_file() && md5_file(&target)? == *md5 {
            continue;
        }
        let part = dest.join(format!("{name}.part"));
        let url = format!("{}{name}", source.base);
        download(&url, &part, name, progress)?;
        let got = md5_file(&part)?;
        if got != *md5 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Data(format!(
                "{url}: md5 {got} does not match the published {md5}; the partial download was removed, run the command again"
            )));
        }
        std::fs::rename(&part, &target).map_err(io_err(&target))?;
        if name.ends_with(".tar.gz") {
            let f = std::fs::File::open(&target).map_err(io_err(&target))?;
            tar::Archive::new(flate2::read::GzDecoder::new(f)).unpack(dest).map_err(io_err(&target))?;
        }
    }
    Ok(dest.to_path_buf())
}

/// The HTTP client: HTTPS (rustls, the system's root certificates), redirects followed, proxies
/// from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), 30 s to connect and to wait for
/// the server to start answering.
fn client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("pipe/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // No total limit: CIFAR-10 is 170 MB on a slow link. A stalled transfer is cut by TCP.
        .timeout(None)
        .build()
        .map_err(|e| Error::Data(format!("cannot set up the HTTP client: {e}")))
}

/// GET `url` into `part`, continuing from its current length with a Range request.
fn download(url: &str, part: &Path, name: &str, progress: OnProgress) -> Result<()> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let net =
        |e: &dyn std::fmt::Display| Error::Data(format!("{url}: {e} (check the network, a proxy (HTTPS_PROXY) or the mirror; rerun to resume)"));
    let mut req = client()?.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().map_err(|e| net(&error_chain(&e)))?;
    let append = match resp.status().as_u16() {
        200 => false,
        206 => true,
        416 => return Ok(()), // the part file is already complete
        code => return Err(Error::Data(format!("{url}: HTTP {code} {}", resp.status().canonical_reason().unwrap_or("")))),
    };
    let mut file = std::fs::OpenOptions::new().create(true).append(append).write(true).truncate(!append).open(part).map_err(io_err(part))?;
    let mut done = if append { have } else { 0 };
    let total = resp.content_length().map(|l| l + done);
    let mut buf = vec![0u8; 1 << 16];
    let cut = |done: u64| match total {
        Some(t) => Error::Data(format!("{url}: connection closed after {done} of {t} bytes; run the command again to resume")),
        None => Error::Data(format!("{url}: connection closed after {done} bytes; run the command again to resume")),
    };
    loop {
        let n = match resp.read(&mut buf) {
            Ok(n) => n,
            // The body ended early (the server or the network dropped it): keep what arrived.
            Err(_) => {
                file.sync_all().map_err(io_err(part))?;
                return Err(cut(done));
            }
        };
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io_err(part))?;
        done += n as u64;
        progress(name, done, total);
    }
    file.sync_all().map_err(io_err(part))?;
    match total {
        Some(t) if done < t => Err(cut(done)),
        _ => Ok(()),
    }
}

/// An error with its causes (reqwest's own message is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
