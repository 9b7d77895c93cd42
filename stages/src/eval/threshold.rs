//! Thresholds fitted on the normal TRAINING data only (the published study had none):
//! `radius` (a quantile of the Deep SVDD scores, or the soft-boundary R), `gaussian`
//! (mean + k * std of the training scores) and `mahalanobis` (mean and Ledoit-Wolf-shrunk
//! covariance of the training latent codes; score = squared Mahalanobis distance; cut at a
//! chi-square quantile or a training-score quantile).

use tch::{Kind, Tensor};

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Radius,
    Gaussian { k: f64 },
    Mahalanobis { shrinkage: Shrinkage },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shrinkage {
    LedoitWolf,
    Ridge(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cutoff {
    /// The `level` quantile of the training scores.
    Quantile(f64),
    /// The `level` quantile of chi-square with d degrees of freedom (Mahalanobis only).
    ChiSquare(f64),
    /// Score 0 (= distance R^2) of a soft-boundary model (radius only).
    Boundary,
}

/// A fitted scorer + threshold.
pub struct Fitted {
    pub threshold: f64,
    /// Mahalanobis mean [d] and precision (inverse covariance) [d, d], f64.
    pub gaussian: Option<(Tensor, Tensor)>,
    /// Ledoit-Wolf shrinkage intensity used (0 when not Mahalanobis).
    pub shrinkage: f64,
}

/// Linear-interpolated quantile (numpy's default).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Ledoit-Wolf shrinkage of the empirical covariance of `x` [n, d] (f64); returns (cov, intensity).
pub fn ledoit_wolf(x: &Tensor) -> (Tensor, f64) {
    let n = x.size()[0] as f64;
    let d = x.size()[1] as f64;
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let emp = xc.transpose(0, 1).matmul(&xc) / n;
    let x2 = xc.square();
    let trace = x2.sum_dim_intlist(0, false, Kind::Double) / n;
    let mu = trace.sum(Kind::Double).double_value(&[]) / d;
    let beta_ = x2.transpose(0, 1).matmul(&x2).sum(Kind::Double).double_value(&[]);
    let delta_ = xc.transpose(0, 1).matmul(&xc).square().sum(Kind::Double).double_value(&[]) / (n * n);
    let beta = (beta_ / n - delta_) / (d * n);
    let delta = (delta_ - 2.0 * mu * trace.sum(Kind::Double).double_value(&[]) + d * mu * mu) / d;
    let beta = beta.min(delta);
    let s = if beta == 0.0 { 0.0 } else { beta / delta };
    let eye = Tensor::eye(d as i64, (Kind::Double, x.device()));
    (emp * (1.0 - s) + eye * (s * mu), s)
}

/// Squared Mahalanobis distances of the rows of `z` [n, d].
pub fn mahalanobis(z: &Tensor, mean: &Tensor, precision: &Tensor) -> Tensor {
    let zc = z.to_kind(Kind::Double) - mean;
    (zc.matmul(precision) * &zc).sum_dim_intlist(1, false, Kind::Double)
}

/// Fits the method on TRAINING scores and latent codes; never sees test data.
pub fn fit(method: Method, cutoff: Cutoff, train_scores: &[f64], train_z: &Tensor) -> Result<Fitted> {
    fit_calibrated(method, cutoff, train_scores, train_z, None)
}

/// Like [`fit`], with the threshold cut on separate CALIBRATION rows (held-out normal images the
/// model never trained on: scores and latent codes): the Gaussian of `mahalanobis` is still
/// estimated on the training codes, while every quantile (and `gaussian`'s mean + k std) is taken
/// over the calibration rows, so the false-positive rate on new normal images matches `level`
/// (split conformal calibration; Vovk et al. 2005, Lei et al. 2018). `None`: the training rows.
pub fn fit_calibrated(
    method: Method,
    cutoff: Cutoff,
    train_scores: &[f64],
    train_z: &Tensor,
    calibration: Option<(&[f64], &Tensor)>,
) -> Result<Fitted> {
    let (cal_scores, cal_z) = calibration.unwrap_or((train_scores, train_z));
    fit_inner(method, cutoff, cal_scores, train_z, cal_z)
}

fn fit_inner(method: Method, cutoff: Cutoff, train_scores: &[f64], train_z: &Tensor, cal_z: &Tensor) -> Result<Fitted> {
    if train_scores.len() < 2 {
        return Err(Error::Data("need at least 2 training scores to fit a threshold".into()));
    }
    if let Some(i) = train_scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Data(format!(
            "score of fitting row {i} is {}: the model diverged; lower the learning rate or check the data",
            train_scores[i]
        )));
    }
    let level_ok = |l: f64| if (0.0..1.0).contains(&l) { Ok(l) } else { Err(Error::Data(format!("level {l} must be in [0, 1)"))) };
    match method {
        Method::Radius | Method::Gaussian { .. } => {
            let threshold = match (method, cutoff) {
                (Method::Gaussian { k }, _) => {
                    let n = train_scores.len() as f64;
                    let mean = train_scores.iter().sum::<f64>() / n;
                    let var = train_scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    mean + k * var.sqrt()
                }
                (_, Cutoff::Quantile(l)) => quantile(train_scores, level_ok(l)?),
                (_, Cutoff::Boundary) => 0.0,
                (_, Cutoff::ChiSquare(_)) => return Err(Error::Data("cutoff `chi2` applies to method `mahalanobis` only; use `quantile`".into())),
            };
            Ok(Fitted { threshold, gaussian: None, shrinkage: 0.0 })
        }
        Method::Mahalanobis { shrinkage } => {
            let z = train_z.to_kind(Kind::Double);
            let (n, d) = (z.size()[0], z.size()[1]);
            if n <= 1 {
                return Err(Error::Data("need more than one training code for a covariance".into()));
            }
            let mean = z.mean_dim(0, false, Kind::Double);
            let (cov, s) = match shrinkage {
                Shrinkage::LedoitWolf => ledoit_wolf(&z),
                Shrinkage::Ridge(r) => {
                    let zc = &z - &mean;
                    let emp = zc.transpose(0, 1).matmul(&zc) / (n - 1) as f64;
                    (emp + Tensor::eye(d, (Kind::Double, z.device())) * r, 0.0)
                }
            };
            let precision = Tensor::f_linalg_inv(&cov)
                .map_err(|e| Error::Data(format!("the latent covariance is singular ({e}); use shrinkage `ledoit-wolf` or a larger `ridge`")))?;
            let scores: Vec<f64> = Vec::<f64>::try_from(mahalanobis(&cal_z.to_kind(Kind::Double), &mean, &precision))?;
            let threshold = match cutoff {
                Cutoff::Quantile(l) => quantile(&scores, level_ok(l)?),
                Cutoff::ChiSquare(l) => chi2_quantile(level_ok(l)?, d as f64),
                Cutoff::Boundary => return Err(Error::Data("cutoff `boundary` applies to method `radius` only".into())),
            };
            Ok(Fitted { threshold, gaussian: Some((mean, precision)), shrinkage: s })
        }
    }
}

/// ln Gamma (Lanczos).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 6] = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
    let mut y = x;
    let tmp = x + 5.5 - (x + 0.5) * (x + 5.5).ln();
    let mut ser = 1.000000000190015;
    for g in G {
        y += 1.0;
        ser += g / y;
    }
    -tmp + (2.5066282746310005 * ser / x).ln()
}

/// Regularised lower incomplete gamma P(a, x).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        sum * (-x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        // Continued fraction (Lentz) for Q, then P = 1 - Q.
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / 1e-300;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < 1e-300 {
                d = 1e-300;
            }
            c = b + an / c;
            if c.abs() < 1e-300 {
                c = 1e-300;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        1.0 - (-x + a * x.ln() - ln_gamma(a)).exp() * h
    }
}

/// Chi-square CDF with `k` degrees of freedom.
pub fn chi2_cdf(x: f64, k: f64) -> f64 {
    gamma_p(k / 2.0, x / 2.0)
}

/// Inverse chi-square CDF by bisection.
pub fn chi2_quantile(p: f64, k: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, k.max(1.0));
    while chi2_cdf(hi, k) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if chi2_cdf(mid, k) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_quantiles_match_tables() {
        assert!((chi2_quantile(0.95, 1.0) - 3.841459).abs() < 1e-4);
        assert!((chi2_quantile(0.95, 32.0) - 46.19426).abs() < 1e-3);
        assert!((chi2_quantile(0.99, 128.0) - 168.1332).abs() < 1e-2);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile(&[0.0, 10.0], 0.95), 9.5);
    }

    #[test]
    fn mahalanobis_matches_a_direct_computation() {
        // Known covariance diag(4, 1) with correlation: Sigma = [[4, 1], [1, 1]].
        let sigma = Tensor::from_slice(&[4.0f64, 1.0, 1.0, 1.0]).view([2, 2]);
        let precision = Tensor::linalg_inv(&sigma);
        let mean = Tensor::from_slice(&[1.0f64, -1.0]);
        let z = Tensor::from_slice(&[3.0f64, 0.0]).view([1, 2]);
        // Direct: v = (2, 1); Sigma^-1 = 1/3 [[1, -1], [-1, 4]]; v' S^-1 v = (4 - 4 + 4) / 3.
        let m = mahalanobis(&z, &mean, &precision).double_value(&[0]);
        assert!((m - 4.0 / 3.0).abs() < 1e-12, "{m}");
    }

    #[test]
    fn ledoit_wolf_matches_scikit_learn() {
        // scikit-learn 1.9.1: sklearn.covariance.ledoit_wolf(X) with this X gives shrinkage
        // 0.504395604395604 and a covariance of trace 7.6 (= 2.96 + 4.64, the population variances).
        let x = Tensor::from_slice(&[1.0f64, 2.0, 2.0, 1.0, 3.0, 5.0, 4.0, 3.0, 6.0, 7.0]).view([5, 2]);
        let (cov, s) = ledoit_wolf(&x);
        assert!(s > 0.0 && s < 1.0);
        let emp_trace = 2.96 + 4.64;
        assert!((cov.trace().double_value(&[]) - emp_trace).abs() < 1e-9, "shrinkage keeps the trace");
        assert!((s - 0.504395604395604).abs() < 1e-9, "{s}");
    }
}
