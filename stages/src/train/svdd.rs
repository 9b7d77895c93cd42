//! Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018): map normal data into a
//! small hypersphere around a centre c. Objectives: one-class (mean distance to c) and
//! soft-boundary (R^2 + 1/nu * mean hinge). HYBRID adds mu2 x reconstruction error and trains
//! encoder AND decoder jointly (the re-experiment's code optimised the encoder only, so its
//! reconstruction term had no effect).

use std::path::Path;

use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::adam::Adam;
use super::checkpoint::{Checkpoints, LoopState, Session};
use super::{batches, check, reconstruction_error, History, TrainConfig};
use crate::data::OneClass;
use crate::models::svdd::{Objective, SvddModel};
use crate::models::{self, Arch, Encoder};
use crate::rng::Rng;
use crate::{Error, Monitor, Result};

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

/// Trains Deep SVDD, initialised from the autoencoder weights at `pretrained` when given (no
/// checkpoints).
pub fn train(data: &OneClass, pretrained: Option<&Path>, cfg: &SvddConfig, monitor: &dyn Monitor) -> Result<(SvddModel, History)> {
    let (model, history, _) = train_checkpointed(data, pretrained, cfg, None, monitor)?;
    Ok((model, history))
}

/// Trains Deep SVDD on `data.train_x` ([n, c, h, w] float32), initialised from the autoencoder
/// weights at `pretrained` when given, saving its state to `checkpoints` at epoch boundaries
/// ([`super::checkpoint`]; with the centre `svdd.c` and the radius `svdd.radius`) and resuming from
/// the latest checkpoint of at most `cfg.train.epochs` epochs found there. The model and History
/// equal a cold run's bit for bit (same thread count).
///
/// Returns the model, the History of all epochs, and the epoch resumed from (None for a cold
/// start; `Some(epochs)` means no step was trained). Errors: invalid settings, an unusable
/// pretrained file, a diverged loss, [`Error::Cancelled`], a checkpoint that does not load (named,
/// with how to start over), I/O while saving.
pub fn train_checkpointed(
    data: &OneClass,
    pretrained: Option<&Path>,
    cfg: &SvddConfig,
    checkpoints: Option<&Checkpoints>,
    monitor: &dyn Monitor,
) -> Result<(SvddModel, History, Option<usize>)> {
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
    let mut key = format!(
        "{} objective={:?} mu1={:?} mu2={:?} warm_up_epochs={} center_eps={:?}",
        t.trajectory_key(),
        cfg.objective,
        cfg.mu1,
        cfg.mu2,
        cfg.warm_up_epochs,
        cfg.center_eps
    );
    if let Some(path) = pretrained {
        let missing = vs.load_partial(path)?;
        if !missing.is_empty() {
            return Err(Error::Data(format!(
                "{}: pretrained autoencoder lacks {} (was it trained for another dataset?)",
                path.display(),
                missing.join(", ")
            )));
        }
        if checkpoints.is_some() {
            let bytes = std::fs::read(path).map_err(crate::io_err(path))?;
            key += &format!(" pretrained_sha256={:x}", Sha256::digest(&bytes));
        }
    } else if hybrid {
        return Err(Error::Data("a hybrid model (mu2 > 0) needs a pretrained autoencoder (`ae` input)".into()));
    }
    let batch = t.batch_size as i64;
    let mut opt = Adam::new(&vs, t.lr, t.weight_decay)?;
    let mut rng = Rng::new(t.seed.wrapping_add(2));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    let mut session = Session::new(checkpoints, "train_svdd", key, t.epochs);
    let state = LoopState { vs: &vs, adam: &mut opt, rng: &mut rng, history: &mut history };
    let rep_dim = arch.rep_dim();
    let restored = session.resume(
        state,
        |extra| {
            let c = extra.remove("svdd.c").ok_or("no tensor `svdd.c`")?;
            if c.kind() != Kind::Float || c.size() != [rep_dim] {
                return Err(format!("`svdd.c` must be Float [{rep_dim}]"));
            }
            let r = extra.remove("svdd.radius").ok_or("no tensor `svdd.radius`")?;
            if r.kind() != Kind::Double || r.numel() != 1 {
                return Err("`svdd.radius` must be one f64".into());
            }
            Ok((c.to_device(t.device), r.double_value(&[0])))
        },
        monitor,
    )?;
    let resumed = restored.as_ref().map(|(epoch, _)| *epoch);
    let (c, mut radius) = match restored {
        Some((_, state)) => state,
        None => (init_center(encoder.as_ref(), &data.train_x, batch, cfg.center_eps, t.device), 0.0f64),
    };
    for epoch in resumed.unwrap_or(0) + 1..=t.epochs {
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
        let state = LoopState { vs: &vs, adam: &mut opt, rng: &mut rng, history: &mut history };
        session.epoch_done(epoch, state, || vec![("svdd.c".into(), c.shallow_clone()), ("svdd.radius".into(), Tensor::from_slice(&[radius]))])?;
        monitor.epoch(epoch, t.epochs, sum / k);
    }
    vs.freeze();
    Ok((SvddModel { vs, arch, encoder, decoder, c, radius, objective: cfg.objective, leaky_slope: t.leaky_slope }, history, resumed))
}
