//! Autoencoder pretraining (Ruff et al. 2018, Sec. 3.3): minimise the reconstruction error
//! (sum over pixels, mean over the batch) with Adam; the encoder then initialises Deep SVDD.

use tch::Kind;

use super::adam::Adam;
use super::checkpoint::{Checkpoints, LoopState, Session};
use super::{batches, check, reconstruction_error, History, TrainConfig};
use crate::data::OneClass;
use crate::models::autoencoder::Autoencoder;
use crate::models::Arch;
use crate::rng::Rng;
use crate::{Monitor, Result};

/// Trains an autoencoder on the normal training images (no checkpoints).
pub fn pretrain(data: &OneClass, cfg: &TrainConfig, monitor: &dyn Monitor) -> Result<(Autoencoder, History)> {
    let (ae, history, _) = pretrain_checkpointed(data, cfg, None, monitor)?;
    Ok((ae, history))
}

/// Trains an autoencoder on the normal training images (`data.train_x`: [n, c, h, w] float32),
/// saving its state to `checkpoints` at epoch boundaries ([`super::checkpoint`]) and resuming from
/// the latest checkpoint of at most `cfg.epochs` epochs found there. The model and History equal
/// a cold run's bit for bit (same thread count).
///
/// Returns the model, the History of all `cfg.epochs` epochs, and the epoch resumed from (None
/// for a cold start; `Some(cfg.epochs)` means no step was trained). Errors: invalid settings, a
/// diverged loss, [`crate::Error::Cancelled`], a checkpoint that does not load (named, with how
/// to start over), I/O while saving.
pub fn pretrain_checkpointed(
    data: &OneClass,
    cfg: &TrainConfig,
    checkpoints: Option<&Checkpoints>,
    monitor: &dyn Monitor,
) -> Result<(Autoencoder, History, Option<usize>)> {
    cfg.validate()?;
    let arch = Arch::for_channels(data.train_x.size()[1]);
    let ae = Autoencoder::new(arch, cfg)?;
    let mut opt = Adam::new(&ae.vs, cfg.lr, cfg.weight_decay)?;
    let mut rng = Rng::new(cfg.seed.wrapping_add(1));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    let mut session = Session::new(checkpoints, "pretrain_ae", cfg.trajectory_key(), cfg.epochs);
    let state = LoopState { vs: &ae.vs, adam: &mut opt, rng: &mut rng, history: &mut history };
    let resumed = session.resume(state, |_| Ok(()), monitor)?.map(|(epoch, ())| epoch);
    for epoch in resumed.unwrap_or(0) + 1..=cfg.epochs {
        let lr = cfg.lr_at(epoch);
        opt.set_lr(lr);
        let (mut sum, mut count) = (0.0, 0usize);
        for idx in batches(&mut rng, n, cfg.batch_size) {
            check(monitor)?;
            let x = data.train_x.index_select(0, &idx).to_device(cfg.device);
            let loss = reconstruction_error(&ae.reconstruct(&x, true), &x).mean(Kind::Float);
            opt.backward_step(&loss);
            let b = idx.size()[0] as usize;
            let value = loss.double_value(&[]);
            monitor.step(&idx, value);
            sum += value * b as f64;
            count += b;
        }
        let mean = sum / count.max(1) as f64;
        history.push(epoch, mean, f64::NAN, mean, lr)?;
        session.epoch_done(epoch, LoopState { vs: &ae.vs, adam: &mut opt, rng: &mut rng, history: &mut history }, Vec::new)?;
        monitor.epoch(epoch, cfg.epochs, mean);
    }
    Ok((ae, history, resumed))
}
