//! CIFAR-10, binary version: `data_batch_1..5.bin` and `test_batch.bin`, each record one label byte
//! and 3,072 pixel bytes (1,024 R, 1,024 G, 1,024 B, row-major 32x32).

use std::path::Path;

use super::idx::Images;
use crate::{Error, Result};

pub const RECORD: usize = 1 + 3 * 32 * 32;
pub const TRAIN_FILES: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const TEST_FILE: &str = "test_batch.bin";

/// Decodes one batch file into CHW images (rows = 32, cols = 32, 3 planes per image) and labels.
pub fn read_batch(path: &Path, bytes: &[u8]) -> Result<(Images, Vec<u8>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::Data(format!(
            "{}: {} bytes is not a whole number of {RECORD}-byte CIFAR-10 records; the file is truncated or not the binary version (cifar-10-binary.tar.gz).{}",
            path.display(),
            bytes.len(),
            super::idx::looks_like(bytes)
        )));
    }
    let n = bytes.len() / RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(Error::Data(format!(
                "{}: record {i} has label {} (CIFAR-10 labels are 0..=9); the file is damaged or not CIFAR-10",
                path.display(),
                rec[0]
            )));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((Images { n, rows: 32, cols: 32, pixels }, labels))
}

/// Encodes CHW images and labels as one batch file (fixtures).
pub fn encode_batch(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, l) in labels.iter().enumerate() {
        out.push(*l);
        out.extend_from_slice(&images[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]);
    }
    out
}
