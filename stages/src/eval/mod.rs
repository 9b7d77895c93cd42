//! Evaluation: thresholds fitted on training data, detection metrics, and the score tables they
//! read and write.

pub mod metrics;
pub mod threshold;

use std::path::Path;

use polars::prelude::*;
use tch::Tensor;

use crate::table::{matrix_columns, read_parquet};
use crate::{Error, Result};

/// The per-image table written by `train_svdd` (and re-scored by `fit_threshold`).
pub struct ScoreTable {
    pub split: Vec<String>,
    pub index: Vec<i64>,
    pub label: Vec<i64>,
    pub class: Vec<i64>,
    pub score: Vec<f64>,
    /// ||phi(x) - c||^2 per row, where the table has it (a trained model's scores do).
    pub distance: Option<Vec<f64>>,
    /// Latent codes [n, d] (float32); empty [n, 0] when the table has none.
    pub z: Tensor,
}

fn col<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Column> {
    df.column(name).map_err(|_| Error::Data(format!("{}: not a score table (no column `{name}`)", path.display())))
}

impl ScoreTable {
    pub fn read(path: &Path) -> Result<Self> {
        let df = read_parquet(path)?;
        let split: Vec<String> = col(&df, "split", path)?.str()?.into_iter().map(|s| s.unwrap_or_default().to_string()).collect();
        let ints = |name: &str| -> Result<Vec<i64>> { Ok(col(&df, name, path)?.i64()?.into_iter().map(|v| v.unwrap_or(0)).collect()) };
        let score: Vec<f64> = col(&df, "score", path)?.f64()?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let zcols: Vec<&Column> = (0..).map_while(|j| df.column(&format!("z{j}")).ok()).collect();
        let n = split.len();
        let mut flat = Vec::with_capacity(n * zcols.len());
        let cols: Vec<Vec<f32>> =
            zcols.iter().map(|c| c.f32().map(|ca| ca.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())).collect::<std::result::Result<_, _>>()?;
        for i in 0..n {
            for c in &cols {
                flat.push(c[i]);
            }
        }
        let z = Tensor::from_slice(&flat).view([n as i64, cols.len() as i64]);
        let distance = match df.column("distance") {
            Ok(c) => Some(c.f64()?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()),
            Err(_) => None,
        };
        Ok(ScoreTable { split, index: ints("index")?, label: ints("label")?, class: ints("class")?, score, distance, z })
    }

    /// Whether the scores come from a one-class Deep SVDD model: every score is the plain distance
    /// (a soft-boundary model's score is distance - R^2 with R > 0, Ruff et al. 2018, eq. 3).
    pub fn is_one_class(&self) -> bool {
        self.distance.as_ref().is_some_and(|d| d.iter().zip(&self.score).all(|(a, b)| a == b))
    }

    pub fn rows(&self, split: &str) -> Vec<usize> {
        (0..self.split.len()).filter(|&i| self.split[i] == split).collect()
    }

    pub fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
        rows.iter().map(|&i| v[i].clone()).collect()
    }

    pub fn z_rows(&self, rows: &[usize]) -> Tensor {
        let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
        self.z.index_select(0, &Tensor::from_slice(&idx))
    }

    /// The same table with new scores (latent codes kept).
    pub fn to_frame(&self, score: &[f64]) -> Result<DataFrame> {
        let mut cols = vec![
            Column::new("split".into(), &self.split),
            Column::new("index".into(), &self.index),
            Column::new("label".into(), &self.label),
            Column::new("class".into(), &self.class),
            Column::new("score".into(), score),
        ];
        if self.z.size()[1] > 0 {
            cols.extend(matrix_columns(&self.z, "z")?);
        }
        Ok(DataFrame::new(cols)?)
    }
}
