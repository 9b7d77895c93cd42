//! IDX files (MNIST, Fashion-MNIST): gzipped or raw, validated against their headers.

use std::path::Path;

use crate::{Error, Result};

/// Images as row-major u8 pixels.
#[derive(Debug, Clone)]
pub struct Images {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// What a file that is not IDX looks like, when it is recognisable: a web page saved by a failed
/// download is the common case.
pub(crate) fn looks_like(bytes: &[u8]) -> &'static str {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).trim_start().to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.starts_with("<?xml") || head.starts_with("<error") {
        " It is an HTML/XML page (a failed download or an error page from the mirror)."
    } else if bytes.starts_with(&[0x80]) {
        " It looks like a Python pickle (the Python version of the dataset, not the binary one)."
    } else if bytes.starts_with(b"PK") {
        " It is a zip archive: extract it first."
    } else {
        ""
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn read_images(path: &Path, bytes: &[u8]) -> Result<Images> {
    let bad = |m: String| Error::Data(format!("{}: {m}", path.display()));
    if bytes.len() < 16 {
        return Err(bad(format!("too short for an IDX image header ({} bytes); the file is truncated", bytes.len())));
    }
    let magic = be32(bytes, 0);
    if magic != IMAGES_MAGIC {
        return Err(bad(format!(
            "wrong magic number 0x{magic:08x} (IDX images have 0x{IMAGES_MAGIC:08x}); is this a labels file or not IDX at all?{}",
            looks_like(bytes)
        )));
    }
    let (n, rows, cols) = (be32(bytes, 4) as usize, be32(bytes, 8) as usize, be32(bytes, 12) as usize);
    // Checked: a damaged header can declare sizes whose product overflows.
    let Some(want) = n.checked_mul(rows).and_then(|x| x.checked_mul(cols)).and_then(|x| x.checked_add(16)) else {
        return Err(bad(format!(
            "header declares {n} images of {rows}x{cols}, more bytes than can exist; the file is damaged: download it again (`pipe data fetch`)"
        )));
    };
    if bytes.len() != want {
        return Err(bad(format!(
            "header declares {n} images of {rows}x{cols} ({want} bytes) but the file has {} bytes; it is {}: download it again (`pipe data fetch`)",
            bytes.len(),
            if bytes.len() < want { "truncated" } else { "longer than declared" }
        )));
    }
    Ok(Images { n, rows, cols, pixels: bytes[16..].to_vec() })
}

pub fn read_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let bad = |m: String| Error::Data(format!("{}: {m}", path.display()));
    if bytes.len() < 8 {
        return Err(bad(format!("too short for an IDX label header ({} bytes); the file is truncated", bytes.len())));
    }
    let magic = be32(bytes, 0);
    if magic != LABELS_MAGIC {
        return Err(bad(format!(
            "wrong magic number 0x{magic:08x} (IDX labels have 0x{LABELS_MAGIC:08x}); is this an images file or not IDX at all?{}",
            looks_like(bytes)
        )));
    }
    let n = be32(bytes, 4) as usize;
    if bytes.len() != 8 + n {
        return Err(bad(format!("header declares {n} labels but the file has {} label bytes; it is truncated or damaged", bytes.len() - 8)));
    }
    let labels = bytes[8..].to_vec();
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(bad(format!("label {l} at index {i} is out of range 0..=9; the file is damaged")));
    }
    Ok(labels)
}

/// Encodes images as IDX (used to build test fixtures and the bundled subset).
pub fn encode_images(img: &Images) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + img.pixels.len());
    for v in [IMAGES_MAGIC, img.n as u32, img.rows as u32, img.cols as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&img.pixels);
    out
}

pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}
