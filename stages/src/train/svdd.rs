//! Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018): map normal data into a
//! small hypersphere around a centre c. Objectives: one-class (mean distance to c) and
//! soft-boundary (R^2 + 1/nu * mean hinge). HYBRID adds mu2 x reconstruction error and trains
//! encoder AND decoder jointly (the re-experiment's code optimised the encoder only, so its
//! reconstruction term had no effect).

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use super::{batches, check, reconstruction_error, History, TrainConfig};
use crate::data::OneClass;
use crate::models::{self, Arch, Decoder, Encoder};
use crate::rng::Rng;
use crate::{Error, Monitor, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    OneClass,
    SoftBoundary { nu: f64 },
}

#[derive(Clone, Debug)]
pub struct SvddConfig {
    pub train: TrainConfig,
    pub objective: Objective,
    /// Weight of the Deep SVDD term.
    pub mu1: f64,
    /// Weight of the reconstruction term; > 0 makes the model hybrid (decoder trained too).
    pub mu2: f64,
    /// Soft-boundary: epochs before R is updated.
    pub warm_up_epochs: usize,
    /// Centre coordinates closer to 0 than this are pushed to +-eps (avoids trivial solutions).
    pub center_eps: f64,
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
    fn build(arch: Arch, device: tch::Device, slope: f64, hybrid: bool) -> (nn::VarStore, Box<dyn Encoder>, Option<Box<dyn Decoder>>) {
        let vs = nn::VarStore::new(device);
        // The hybrid reuses the autoencoder's bottleneck (CIFAR: BatchNorm1d) before decoding.
        let encoder = models::encoder(&(vs.root() / "encoder"), arch, slope, hybrid);
        let decoder = hybrid.then(|| models::decoder(&(vs.root() / "decoder"), arch, slope));
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

/// Centre c: mean latent code of the training data (eval mode), small coordinates pushed to +-eps.
pub fn init_center(encoder: &dyn Encoder, x: &Tensor, batch: i64, eps: f64, device: tch::Device) -> Tensor {
    tch::no_grad(|| {
        let n = x.size()[0];
        let mut sum: Option<Tensor> = None;
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let z = encoder.forward(&x.narrow(0, start, len).to_device(device), false);
            let s = z.sum_dim_intlist(0, false, Kind::Float);
            sum = Some(match sum {
                Some(acc) => acc + s,
                None => s,
            });
            start += len;
        }
        let c = sum.expect("at least one batch") / n as f64;
        let small = c.abs().lt(eps);
        let signed = c.sign().where_self(&c.ne(0.0), &c.ones_like()) * eps;
        signed.where_self(&small, &c)
    })
}

/// (1 - nu)-quantile of the distances (not squared), as in Ruff's `get_radius`.
fn radius_quantile(dist: &Tensor, nu: f64) -> f64 {
    let mut v: Vec<f64> = Vec::<f64>::try_from(dist.sqrt().to_kind(Kind::Double).flatten(0, -1)).unwrap_or_default();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    // Linear interpolation, numpy's default.
    let pos = (1.0 - nu) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Trains Deep SVDD, initialised from the autoencoder weights at `pretrained` when given.
pub fn train(data: &OneClass, pretrained: Option<&Path>, cfg: &SvddConfig, monitor: &dyn Monitor) -> Result<(SvddModel, History)> {
    cfg.train.validate()?;
    if cfg.mu1 < 0.0 || cfg.mu2 < 0.0 || (cfg.mu1 == 0.0 && cfg.mu2 == 0.0) {
        return Err(Error::Data("mu1 and mu2 must be >= 0 and not both 0".into()));
    }
    if let Objective::SoftBoundary { nu } = cfg.objective {
        if !(nu > 0.0 && nu <= 1.0) {
            return Err(Error::Data(format!("nu must be in (0, 1], got {nu}")));
        }
    }
    let t = &cfg.train;
    let arch = Arch::for_channels(data.train_x.size()[1]);
    let hybrid = cfg.mu2 > 0.0;
    let (mut vs, encoder, decoder) = SvddModel::build(arch, t.device, t.leaky_slope, hybrid);
    models::init_weights(&vs, &mut Rng::new(t.seed), models::default_init(arch))?;
    if let Some(path) = pretrained {
        let missing = vs.load_partial(path)?;
        if !missing.is_empty() {
            return Err(Error::Data(format!(
                "{}: pretrained autoencoder lacks {} (was it trained for another dataset?)",
                path.display(),
                missing.join(", ")
            )));
        }
    } else if hybrid {
        return Err(Error::Data("a hybrid model (mu2 > 0) needs a pretrained autoencoder (`ae` input)".into()));
    }
    let batch = t.batch_size as i64;
    let c = init_center(encoder.as_ref(), &data.train_x, batch, cfg.center_eps, t.device);
    let mut radius = 0.0f64;
    let mut opt = nn::Adam { wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr)?;
    let mut rng = Rng::new(t.seed.wrapping_add(2));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    for epoch in 1..=t.epochs {
        let lr = t.lr_at(epoch);
        opt.set_lr(lr);
        let (mut sum, mut sum_svdd, mut sum_rec, mut count) = (0.0, 0.0, 0.0, 0usize);
        for idx in batches(&mut rng, n, t.batch_size) {
            check(monitor)?;
            let x = data.train_x.index_select(0, &idx).to_device(t.device);
            let z = encoder.forward(&x, true);
            let dist = (&z - &c).square().sum_dim_intlist(1, false, Kind::Float);
            let svdd_loss = match cfg.objective {
                Objective::OneClass => dist.mean(Kind::Float),
                Objective::SoftBoundary { nu } => {
                    let r2 = radius * radius;
                    (&dist - r2).relu().mean(Kind::Float) / nu + r2
                }
            };
            let mut loss = &svdd_loss * cfg.mu1;
            let mut rec_value = f64::NAN;
            if let Some(dec) = &decoder {
                let rec = reconstruction_error(&dec.forward(&encoder.bottleneck(&z, true), true), &x).mean(Kind::Float);
                rec_value = rec.double_value(&[]);
                // Not `+=`: an in-place add would change the autograd graph of a released model.
                #[allow(clippy::assign_op_pattern)]
                {
                    loss = loss + rec * cfg.mu2;
                }
            }
            opt.backward_step(&loss);
            if let Objective::SoftBoundary { nu } = cfg.objective {
                if epoch > cfg.warm_up_epochs {
                    radius = radius_quantile(&dist.detach(), nu);
                }
            }
            let b = idx.size()[0] as usize;
            let value = loss.double_value(&[]);
            monitor.step(&idx, value);
            sum += value * b as f64;
            sum_svdd += svdd_loss.double_value(&[]) * b as f64;
            sum_rec += rec_value * b as f64;
            count += b;
        }
        let k = count.max(1) as f64;
        history.push(epoch, sum / k, sum_svdd / k, sum_rec / k, lr)?;
        monitor.epoch(epoch, t.epochs, sum / k);
    }
    vs.freeze();
    Ok((SvddModel { vs, arch, encoder, decoder, c, radius, objective: cfg.objective, leaky_slope: t.leaky_slope }, history))
}
