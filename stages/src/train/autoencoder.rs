//! Autoencoder pretraining (Ruff et al. 2018, Sec. 3.3): minimise the reconstruction error
//! (sum over pixels, mean over the batch) with Adam; the encoder then initialises Deep SVDD.

use tch::nn::{self, OptimizerConfig};
use tch::Kind;

use super::{batches, check, reconstruction_error, History, TrainConfig};
use crate::data::OneClass;
use crate::models::autoencoder::Autoencoder;
use crate::models::Arch;
use crate::rng::Rng;
use crate::{Monitor, Result};

/// Trains an autoencoder on the normal training images.
pub fn pretrain(data: &OneClass, cfg: &TrainConfig, monitor: &dyn Monitor) -> Result<(Autoencoder, History)> {
    cfg.validate()?;
    let arch = Arch::for_channels(data.train_x.size()[1]);
    let ae = Autoencoder::new(arch, cfg)?;
    let mut opt = nn::Adam { wd: cfg.weight_decay, ..Default::default() }.build(&ae.vs, cfg.lr)?;
    let mut rng = Rng::new(cfg.seed.wrapping_add(1));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    for epoch in 1..=cfg.epochs {
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
        monitor.epoch(epoch, cfg.epochs, mean);
    }
    Ok((ae, history))
}
