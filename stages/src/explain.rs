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
use crate::models::svdd::SvddModel;
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
    let score = match scorer {
        Scorer::Distance => (&z - &model.c).square().sum_dim_intlist(1, false, Kind::Float),
        Scorer::Mahalanobis { mean, precision } => mahalanobis(&z, &mean.to_device(device), &precision.to_device(device)).to_kind(Kind::Float),
    };
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
