//! Grad-CAM (Selvaraju et al., ICCV 2017) of the ANOMALY SCORE, not of a latent coordinate (as the
//! re-experiment did): the gradient of ||phi(x) - c||^2 (or of the Mahalanobis score) with respect
//! to the last conv layer's activations A; channel weights w_k = spatial mean of dScore/dA_k;
//! heatmap = ReLU(sum_k w_k A_k), normalised to [0, 1] per image and upsampled to the input.
//! HiResCAM (the default, see [`CamMethod`]) keeps the gradient per location instead of averaging it.
//!
//! A is the last conv layer's output after its BatchNorm (eval mode: the deviation from the
//! normal data's running mean, in units of its spread). On the raw pre-BN map the running mean
//! adds a constant per-channel offset to sum_k w_k A_k, which the ReLU can turn into an all-zero
//! heatmap (it did on the synthetic test in tests/explain_tsne.rs).

use tch::{Kind, Tensor};

use crate::eval::threshold::mahalanobis;
use crate::models::svdd::{Objective, SvddModel};
use crate::models::{init_weights, Init};
use crate::rng::Rng;
use crate::Result;

/// Which score the heatmap explains.
pub enum Scorer<'a> {
    /// ||phi(x) - c||^2 (minus R^2 for soft-boundary: same gradient).
    Distance,
    /// (phi(x) - m)' P (phi(x) - m) with the fitted mean and precision.
    Mahalanobis { mean: &'a Tensor, precision: &'a Tensor },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CamMethod {
    /// Selvaraju et al.: channel weights = spatial mean of the gradient.
    GradCam,
    /// Draelos & Carin 2020: gradient x activation per location, summed over channels; the
    /// first-order contribution of each location to the score. The default: channel-averaged
    /// weights wash out a small anomalous region (see tests/explain_tsne.rs).
    HiResCam,
}

/// Heatmaps [B, H, W] in [0, 1] for images `x` [B, C, H, W], and the scores they explain.
pub fn grad_cam(model: &SvddModel, x: &Tensor, scorer: &Scorer, method: CamMethod) -> Result<(Tensor, Vec<f64>)> {
    let device = model.vs.device();
    let x = x.to_device(device).set_requires_grad(true);
    // Eval mode: BatchNorm uses running statistics, so images do not interact.
    let (a, z) = model.encoder.forward_features(&x, false);
    let score = score_codes(model, &z, scorer);
    let grads = Tensor::run_backward(&[score.sum(Kind::Float)], &[&a], false, false);
    let g = &grads[0];
    let contribution = match method {
        CamMethod::GradCam => g.mean_dim(&[2i64, 3][..], true, Kind::Float) * &a,
        CamMethod::HiResCam => g * &a,
    };
    let cam = contribution.sum_dim_intlist(1, true, Kind::Float).relu().detach();
    let (h, w) = (x.size()[2], x.size()[3]);
    let cam = cam.upsample_bilinear2d([h, w], false, None, None).squeeze_dim(1);
    let max = cam.flatten(1, -1).max_dim(1, true).0.clamp_min(1e-12).unsqueeze(-1);
    let cam = (cam / max).to_device(tch::Device::Cpu);
    let scores = Vec::<f64>::try_from(score.detach().to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    Ok((cam, scores))
}

/// The score `scorer` gives latent codes `z` [B, rep_dim] of `model`: [B], on `z`'s device.
fn score_codes(model: &SvddModel, z: &Tensor, scorer: &Scorer) -> Tensor {
    match scorer {
        Scorer::Distance => (z - &model.c).square().sum_dim_intlist(1, false, Kind::Float),
        Scorer::Mahalanobis { mean, precision } => mahalanobis(z, &mean.to_device(z.device()), &precision.to_device(z.device())).to_kind(Kind::Float),
    }
}

/// The anomaly scores [B] of images `x` [B, C, H, W] that `scorer` gives, without gradients.
pub fn scores(model: &SvddModel, x: &Tensor, scorer: &Scorer) -> Tensor {
    tch::no_grad(|| {
        let (_, z) = model.encoder.forward_features(&x.to_device(model.vs.device()), false);
        score_codes(model, &z, scorer).to_device(tch::Device::Cpu)
    })
}

/// The model-parameter randomisation test's model (Adebayo et al., "Sanity Checks for Saliency
/// Maps", NeurIPS 2018, s. 3.1): `model`'s network with every weight drawn afresh from its
/// initialisation (seeded), its centre set as Deep SVDD sets one, the mean code of the `normal`
/// images [N, C, H, W] (Ruff et al. 2018, s. 3.3). A saliency method whose maps barely change
/// under it explains the architecture (edges, the input itself), not what the model learned.
///
/// # Errors
/// Drawing the weights failed.
pub fn randomised(model: &SvddModel, normal: &Tensor, seed: u64) -> Result<SvddModel> {
    let device = model.vs.device();
    let (vs, encoder, _) = SvddModel::build(model.arch, device, model.leaky_slope, false);
    init_weights(&vs, &mut Rng::new(seed), Init::TorchDefault)?;
    let c = tch::no_grad(|| encoder.forward_features(&normal.to_device(device), false).1.mean_dim(0, false, Kind::Float));
    Ok(SvddModel { vs, arch: model.arch, encoder, decoder: None, c, radius: 0.0, objective: Objective::OneClass, leaky_slope: model.leaky_slope })
}

/// Spearman's rank correlation (the randomisation check's measure), from the `stats` crate.
pub use stats::spearman;

/// The deletion curve (Petsiuk et al., "RISE", BMVC 2018, s. 4.1) of image `x` [C, H, W]: its
/// anomaly score as its pixels, in `order` (indices into H x W: the heatmap's, most salient
/// first, or a random one for reference), are replaced by `baseline` [C, H, W] (the normal
/// training images' mean: "what a normal image has there"), in `steps` equal steps, divided by
/// the untouched image's score; `steps + 1` values from 1. Its area over [0, 1] (trapezoids,
/// [`deletion_auc`]) is lower where the map found what makes the image anomalous.
pub fn deletion_curve(model: &SvddModel, x: &Tensor, order: &[i64], baseline: &Tensor, scorer: &Scorer, steps: usize) -> Vec<f64> {
    let (h, w) = (x.size()[1], x.size()[2]);
    let n = (h * w) as usize;
    let mut masks = vec![0f32; (steps + 1) * n];
    for k in 0..=steps {
        for &p in &order[..(k * n).div_ceil(steps).min(n)] {
            masks[k * n + p as usize] = 1.0;
        }
    }
    let mask = Tensor::from_slice(&masks).view([steps as i64 + 1, 1, h, w]);
    let batch = x.unsqueeze(0) * (1.0 - &mask) + baseline.unsqueeze(0) * &mask;
    let sc = Vec::<f64>::try_from(scores(model, &batch, scorer).to_kind(Kind::Double)).unwrap_or_default();
    let first = sc.first().copied().unwrap_or(f64::NAN);
    sc.iter().map(|v| v / first).collect()
}

/// The area under a deletion curve of equal steps over [0, 1] (trapezoids).
pub fn deletion_auc(curve: &[f64]) -> f64 {
    let steps = curve.len().saturating_sub(1).max(1) as f64;
    curve.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_auc_is_the_trapezoid_area() {
        assert_eq!(deletion_auc(&[1.0, 0.5, 0.0]), 0.5);
        assert_eq!(deletion_auc(&[1.0, 1.0]), 1.0);
    }
}
