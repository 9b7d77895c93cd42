//! The autoencoder (Ruff et al., Sec. 3.3): the Deep SVDD encoder with a mirrored decoder,
//! pretrained on reconstruction; its encoder initialises Deep SVDD by tensor name. Training is
//! `crate::train::autoencoder`.

use std::path::Path;

use tch::nn;
use tch::Tensor;

use crate::rng::Rng;
use crate::train::TrainConfig;
use crate::Result;

use super::{Arch, Decoder, Encoder};

/// Encoder + decoder over one variable store (`encoder.*`, `decoder.*`).
pub struct Autoencoder {
    pub vs: nn::VarStore,
    pub arch: Arch,
    pub encoder: Box<dyn Encoder>,
    pub decoder: Box<dyn Decoder>,
}

impl Autoencoder {
    pub fn new(arch: Arch, cfg: &TrainConfig) -> Result<Self> {
        let vs = nn::VarStore::new(cfg.device);
        let encoder = super::encoder(&(vs.root() / "encoder"), arch, cfg.leaky_slope, true);
        let decoder = super::decoder(&(vs.root() / "decoder"), arch, cfg.leaky_slope);
        super::init_weights(&vs, &mut Rng::new(cfg.seed), super::default_init(arch))?;
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
