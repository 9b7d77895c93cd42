//! Autoencoder pretraining (Ruff et al. 2018, Sec. 3.3): minimise the reconstruction error
//! (sum over pixels, mean over the batch) with Adam; the encoder then initialises Deep SVDD.

use std::path::Path;

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use super::{batches, check, reconstruction_error, History, TrainConfig};
use crate::data::OneClass;
use crate::models::{self, Arch, Decoder, Encoder};
use crate::rng::Rng;
use crate::{Monitor, Result};

pub struct Autoencoder {
    pub vs: nn::VarStore,
    pub arch: Arch,
    pub encoder: Box<dyn Encoder>,
    pub decoder: Box<dyn Decoder>,
}

impl Autoencoder {
    pub fn new(arch: Arch, cfg: &TrainConfig) -> Result<Self> {
        let vs = nn::VarStore::new(cfg.device);
        let encoder = models::encoder(&(vs.root() / "encoder"), arch, cfg.leaky_slope, true);
        let decoder = models::decoder(&(vs.root() / "decoder"), arch, cfg.leaky_slope);
        models::init_weights(&vs, &mut Rng::new(cfg.seed), models::default_init(arch))?;
        Ok(Autoencoder { vs, arch, encoder, decoder })
    }

    pub fn reconstruct(&self, x: &Tensor, train: bool) -> Tensor {
        let z = self.encoder.forward(x, train);
        self.decoder.forward(&self.encoder.bottleneck(&z, train), train)
    }

    /// Weights as safetensors named by module path (`encoder.conv1.weight`, ...).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.vs.save(path)?;
        Ok(())
    }
}

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
