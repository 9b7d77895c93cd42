//! Dataset downloads against a loopback HTTP server serving the bundled Fashion-MNIST files (real
//! release-format IDX archives, in every clone): an interrupted download is resumed with a Range
//! request, and checksums are verified.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Workspace;

/// Serves files from `dir`; honours `Range: bytes=N-`; the first GET of `cut` stops half-way.
fn serve(dir: PathBuf, cut: &'static str, corrupt: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ranged = Arc::new(AtomicUsize::new(0));
    let ranged2 = ranged.clone();
    std::thread::spawn(move || {
        let mut cut_done = false;
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let mut from = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    from = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            let mut w = stream;
            let Ok(mut body) = std::fs::read(dir.join(&path)) else {
                let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            };
            if corrupt {
                body[100] ^= 0xff;
            }
            if from > 0 {
                ranged2.fetch_add(1, Ordering::SeqCst);
            }
            let rest = &body[from.min(body.len())..];
            let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
            let _ = write!(w, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rest.len());
            if path == cut && !cut_done {
                cut_done = true;
                let _ = w.write_all(&rest[..rest.len() / 2]);
                continue; // connection dropped mid-body
            }
            let _ = w.write_all(rest);
        }
    });
    (port, ranged)
}

/// The bundled Fashion-MNIST subset: real release-format files (IDX, gzip) that every clone has.
fn bundled_fashion() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/bundled/fashion-mnist")
}

/// md5 of a file, by coreutils' md5sum (the fetcher's own md5 is what is under test).
fn md5sum(path: &std::path::Path) -> String {
    let out = std::process::Command::new("md5sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn interrupted_download_resumes_and_verifies() {
    use stages::data::{self as d, DatasetKind};
    let ws = Workspace::new("fetch");
    let dir = bundled_fashion();
    let (port, ranged) = serve(dir.clone(), "train-images-idx3-ubyte.gz", false);
    // The mirror serves the bundled files; their md5s stand in for the published ones.
    let names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "SHA256SUMS"];
    let source =
        d::fetch::Source { base: format!("http://127.0.0.1:{port}/"), files: names.iter().map(|n| (n.to_string(), md5sum(&dir.join(n)))).collect() };
    let dest = ws.dir.join("dl");
    let first = d::fetch::fetch(&source, &dest, &|_, _, _| {});
    let err = first.expect_err("the cut connection fails the first fetch").to_string();
    assert!(err.contains("connection closed after") && err.contains("run the command again to resume"), "{err}");
    let part = dest.join("train-images-idx3-ubyte.gz.part");
    let partial = std::fs::metadata(&part).unwrap().len();
    assert!(partial > 0);
    let folder = d::fetch::fetch(&source, &dest, &|_, _, _| {}).unwrap();
    assert_eq!(ranged.load(Ordering::SeqCst), 1, "the second fetch asked only for the rest");
    assert!(!part.exists());
    for n in names {
        assert_eq!(std::fs::read(dest.join(n)).unwrap(), std::fs::read(dir.join(n)).unwrap(), "{n}");
    }
    let raw = d::load_raw(DatasetKind::FashionMnist, &d::locate(DatasetKind::FashionMnist, Some(&folder)).unwrap()).unwrap();
    assert_eq!((raw.train.n, raw.test.n), (6000, 2000));
    assert!(raw.unverified.is_empty(), "every file checked against SHA256SUMS");
    let verify = ws.pipe(&["data", "verify", "fashion-mnist", "--dir", "dl"]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(out.contains("Fashion-MNIST: 6000 train + 2000 test images") && out.contains("all checksums verified"), "{out}");
}

#[test]
fn a_damaged_download_is_rejected() {
    let ws = Workspace::new("fetch-bad");
    // Served through the CLI's official file list: the bundled subset is not the published archive.
    let (port, _) = serve(bundled_fashion(), "none", true);
    let mirror = format!("http://127.0.0.1:{port}");
    let out = ws.pipe(&["data", "fetch", "fashion-mnist", "--dir", "dl", "--mirror", &mirror]);
    assert_eq!(out.status.code(), Some(pipe::exit::NOT_FOUND));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the published 8d4fb7e6c68d591d4c3dfef9ec88bf0d"), "{err}");
    let mut leftovers = std::fs::read_dir(ws.dir.join("dl")).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    leftovers.retain(|n| n.to_string_lossy().ends_with(".part"));
    assert!(leftovers.is_empty(), "a damaged part file is removed");
}
