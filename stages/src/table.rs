//! Parquet tables through polars: write atomically-named files, read them back.

use std::path::Path;

use polars::prelude::*;

use crate::{io_err, Result};

pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    ParquetWriter::new(file).with_compression(ParquetCompression::Zstd(None)).finish(df)?;
    Ok(())
}

pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    Ok(ParquetReader::new(file).finish()?)
}

/// A float32 tensor [N, D] as columns `{prefix}0..{prefix}{D-1}`.
pub fn matrix_columns(t: &tch::Tensor, prefix: &str) -> Result<Vec<Column>> {
    let t = t.to_kind(tch::Kind::Float).contiguous();
    let (n, d) = (t.size()[0], t.size()[1]);
    let flat: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1))?;
    Ok((0..d as usize)
        .map(|j| {
            let col: Vec<f32> = (0..n as usize).map(|i| flat[i * d as usize + j]).collect();
            Column::new(format!("{prefix}{j}").into(), col)
        })
        .collect())
}
