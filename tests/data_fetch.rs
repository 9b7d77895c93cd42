//! `pipe data fetch` against a loopback HTTP server serving the real Fashion-MNIST release files:
//! an interrupted download is resumed with a Range request, and checksums are verified.

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

fn shared_fashion() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fashion-mnist")
}

#[test]
fn interrupted_download_resumes_and_verifies() {
    let ws = Workspace::new("fetch");
    let (port, ranged) = serve(shared_fashion(), "train-images-idx3-ubyte.gz", false);
    let mirror = format!("http://127.0.0.1:{port}/");
    let args = ["data", "fetch", "fashion-mnist", "--dir", "dl", "--mirror", mirror.as_str()];
    let first = ws.pipe(&args);
    assert!(!first.status.success());
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("connection closed after") && err.contains("run the command again to resume"), "{err}");
    let part = ws.dir.join("dl/train-images-idx3-ubyte.gz.part");
    let partial = std::fs::metadata(&part).unwrap().len();
    assert!(partial > 0);
    let second = ws.pipe(&args);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(ranged.load(Ordering::SeqCst), 1, "the second run asked only for the rest");
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("Fashion-MNIST: 60000 train + 10000 test images") && out.contains("checksums verified"), "{out}");
    assert!(!part.exists());
    let verify = ws.pipe(&["data", "verify", "fashion-mnist", "--dir", "dl"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("all checksums verified"));
}

#[test]
fn a_damaged_download_is_rejected() {
    let ws = Workspace::new("fetch-bad");
    let (port, _) = serve(shared_fashion(), "none", true);
    let mirror = format!("http://127.0.0.1:{port}");
    let out = ws.pipe(&["data", "fetch", "fashion-mnist", "--dir", "dl", "--mirror", &mirror]);
    assert_eq!(out.status.code(), Some(pipe::exit::NOT_FOUND));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the published 8d4fb7e6c68d591d4c3dfef9ec88bf0d"), "{err}");
    let mut leftovers = std::fs::read_dir(ws.dir.join("dl")).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    leftovers.retain(|n| n.to_string_lossy().ends_with(".part"));
    assert!(leftovers.is_empty(), "a damaged part file is removed");
}
