//! Training: autoencoder pretraining and Deep SVDD (one-class, soft-boundary, hybrid).

pub mod adam;
pub mod autoencoder;
pub mod checkpoint;
pub mod svdd;

pub use checkpoint::Checkpoints;

use polars::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::rng::Rng;
use crate::{Error, Monitor, Result};

/// Optimiser and schedule settings shared by both trainings (Adam, step decay x0.1 at milestones).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// After this many epochs the learning rate is multiplied by 0.1 (each).
    pub milestones: Vec<usize>,
    pub weight_decay: f64,
    pub seed: u64,
    pub device: Device,
    pub leaky_slope: f64,
}

impl TrainConfig {
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops = self.milestones.iter().filter(|m| epoch > **m).count();
        self.lr * 0.1f64.powi(drops as i32)
    }

    /// Every setting that shapes the training trajectory except `epochs` (and the device): a
    /// checkpoint resumes only under the same text.
    pub(crate) fn trajectory_key(&self) -> String {
        format!(
            "batch_size={} lr={:?} milestones={:?} weight_decay={:?} seed={} leaky_slope={:?}",
            self.batch_size, self.lr, self.milestones, self.weight_decay, self.seed, self.leaky_slope
        )
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Data(m.to_string()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size must be at least 2 (BatchNorm needs two samples)");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be a positive number");
        }
        if self.weight_decay < 0.0 {
            return bad("weight_decay must be >= 0");
        }
        if !(0.0..1.0).contains(&self.leaky_slope) {
            return bad("leaky_slope must be in [0, 1)");
        }
        Ok(())
    }
}

/// Shuffled mini-batches of row indices; a trailing batch of one is dropped (BatchNorm needs two).
pub fn batches(rng: &mut Rng, n: usize, batch: usize) -> Vec<Tensor> {
    let perm = rng.permutation(n);
    perm.chunks(batch).filter(|c| c.len() > 1).map(Tensor::from_slice).collect()
}

/// Per-epoch losses, saved as a Parquet table. No wall-clock column: an artifact is a function of
/// its inputs only (so runs anywhere give the same bytes); timings live in the run and node records.
#[derive(Default, Debug, Clone)]
pub struct History {
    pub epoch: Vec<i64>,
    pub loss: Vec<f64>,
    /// Deep SVDD term (NaN for the autoencoder).
    pub svdd: Vec<f64>,
    /// Reconstruction term (NaN when not trained).
    pub reconstruction: Vec<f64>,
    pub lr: Vec<f64>,
}

impl History {
    pub fn push(&mut self, epoch: usize, loss: f64, svdd: f64, rec: f64, lr: f64) -> Result<()> {
        if !loss.is_finite() {
            return Err(Error::Diverged(format!("training diverged at epoch {epoch}: loss is {loss}; lower `lr` or check the input data")));
        }
        self.epoch.push(epoch as i64);
        self.loss.push(loss);
        self.svdd.push(svdd);
        self.reconstruction.push(rec);
        self.lr.push(lr);
        Ok(())
    }

    pub fn to_frame(&self) -> Result<DataFrame> {
        Ok(DataFrame::new(vec![
            Column::new("epoch".into(), &self.epoch),
            Column::new("loss".into(), &self.loss),
            Column::new("svdd_loss".into(), &self.svdd),
            Column::new("reconstruction_loss".into(), &self.reconstruction),
            Column::new("lr".into(), &self.lr),
        ])?)
    }
}

/// Mean squared reconstruction error per image: sum over pixels, one value per row.
pub fn reconstruction_error(recon: &Tensor, x: &Tensor) -> Tensor {
    (recon - x).square().flatten(1, -1).sum_dim_intlist(1, false, Kind::Float)
}

pub(crate) fn check(monitor: &dyn Monitor) -> Result<()> {
    if monitor.cancelled() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}
