//! The Deep SVDD network as trained (Ruff et al., ICML 2018, Sec. 3): an encoder phi (+ the
//! decoder when hybrid), the centre c and, for the soft-boundary objective, the radius R; scoring
//! and the weights file. Training is `crate::train::svdd`.

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn;
use tch::{Kind, Tensor};

use super::{Arch, Decoder, Encoder};
use crate::{Error, Result};

/// The Deep SVDD objective (Ruff et al., Sec. 3.1-3.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// Mean squared distance to c (Eq. 4).
    OneClass,
    /// R^2 + 1/nu * mean hinge of distances beyond R (Eq. 3); `nu` in (0, 1].
    SoftBoundary {
        /// Upper bound on the fraction of training points outside the sphere.
        nu: f64,
    },
}

/// A trained Deep SVDD network: encoder (+ decoder when hybrid), centre c and radius R.
pub struct SvddModel {
    pub vs: nn::VarStore,
    pub arch: Arch,
    pub encoder: Box<dyn Encoder>,
    pub decoder: Option<Box<dyn Decoder>>,
    pub c: Tensor,
    pub radius: f64,
    pub objective: Objective,
    pub leaky_slope: f64,
}

impl SvddModel {
    pub(crate) fn build(arch: Arch, device: tch::Device, slope: f64, hybrid: bool) -> (nn::VarStore, Box<dyn Encoder>, Option<Box<dyn Decoder>>) {
        let vs = nn::VarStore::new(device);
        // The hybrid reuses the autoencoder's bottleneck (CIFAR: BatchNorm1d) before decoding.
        let encoder = super::encoder(&(vs.root() / "encoder"), arch, slope, hybrid);
        let decoder = hybrid.then(|| super::decoder(&(vs.root() / "decoder"), arch, slope));
        (vs, encoder, decoder)
    }

    /// Squared distances ||phi(x) - c||^2 and latent codes, in eval mode, batched.
    pub fn embed(&self, x: &Tensor, batch: i64) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let n = x.size()[0];
            let mut zs = Vec::new();
            let mut start = 0;
            while start < n {
                let len = batch.min(n - start);
                let xb = x.narrow(0, start, len).to_device(self.vs.device());
                zs.push(self.encoder.forward(&xb, false).to_device(tch::Device::Cpu));
                start += len;
            }
            let z = Tensor::cat(&zs, 0);
            let d = (&z - self.c.to_device(tch::Device::Cpu)).square().sum_dim_intlist(1, false, Kind::Float);
            (z, d)
        })
    }

    /// Anomaly score: the squared distance (one-class) or distance minus R^2 (soft-boundary).
    pub fn score_from_distance(&self, d: &Tensor) -> Tensor {
        match self.objective {
            Objective::OneClass => d.shallow_clone(),
            Objective::SoftBoundary { .. } => d - self.radius * self.radius,
        }
    }

    /// Weights (module paths) plus `svdd.c`, `svdd.radius` and `svdd.nu` (0 for one-class).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let nu = match self.objective {
            Objective::OneClass => 0.0,
            Objective::SoftBoundary { nu } => nu,
        };
        named.push(("svdd.c".into(), self.c.to_device(tch::Device::Cpu)));
        named.push(("svdd.radius".into(), Tensor::from_slice(&[self.radius as f32])));
        named.push(("svdd.nu".into(), Tensor::from_slice(&[nu as f32])));
        named.push(("svdd.leaky_slope".into(), Tensor::from_slice(&[self.leaky_slope])));
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Loads a model written by [`SvddModel::save`]; the architecture follows the input channels.
    pub fn load(path: &Path, arch: Arch, device: tch::Device) -> Result<Self> {
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let hybrid = tensors.keys().any(|k| k.starts_with("decoder."));
        let slope = tensors.get("svdd.leaky_slope").map(|t| t.double_value(&[0])).unwrap_or(0.01);
        let (mut vs, encoder, decoder) = Self::build(arch, device, slope, hybrid);
        let get = |k: &str| {
            tensors
                .get(k)
                .map(|t| t.shallow_clone())
                .ok_or_else(|| Error::Data(format!("{}: not a Deep SVDD model for {} (no tensor `{k}`)", path.display(), arch.name())))
        };
        let c = get("svdd.c")?.to_device(device);
        let radius = get("svdd.radius")?.double_value(&[0]);
        let nu = get("svdd.nu")?.double_value(&[0]);
        vs.load_partial(path)?;
        let missing: Vec<String> = vs.variables().keys().filter(|k| !tensors.contains_key(*k)).cloned().collect();
        if !missing.is_empty() {
            return Err(Error::Data(format!("{}: weights file lacks {} (a different architecture?)", path.display(), missing.join(", "))));
        }
        vs.freeze();
        let objective = if nu > 0.0 { Objective::SoftBoundary { nu } } else { Objective::OneClass };
        Ok(SvddModel { vs, arch, encoder, decoder, c, radius, objective, leaky_slope: slope })
    }
}
