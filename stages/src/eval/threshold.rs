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
    /// The `level` split-conformal quantile of the fitting scores ([`conformal_quantile`]).
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

/// The split-conformal threshold at `level` of `n` calibration scores: their k-th smallest, with
/// k = ceil((n + 1) level) (Vovk et al. 2005; Lei et al. 2018, "Distribution-free predictive
/// inference for regression", JASA 113(523), section 2.2; Angelopoulos & Bates 2021, section 1.1).
/// Where a new normal score is exchangeable with the calibration scores, it exceeds this with
/// probability at most 1 - level: the guarantee numpy's linearly interpolated quantile does not
/// give. Errors where n < level / (1 - level): too few rows for any finite threshold to keep it.
pub fn conformal_quantile(values: &[f64], level: f64) -> Result<f64> {
    let n = values.len();
    // (n + 1) level rounded up, with a tolerance for levels like 0.95 not exact in binary.
    let k = ((n + 1) as f64 * level - 1e-9).ceil().max(1.0) as usize;
    if k > n {
        let need = (level / (1.0 - level) - 1e-9).ceil() as usize;
        return Err(Error::Data(format!(
            "{n} calibration scores are too few for a threshold at level {level}: the conformal guarantee needs at least {need}; lower `level` or hold out more normal images (`holdout` of ingest)"
        )));
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Ok(v[k - 1])
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
                (_, Cutoff::Quantile(l)) => conformal_quantile(train_scores, level_ok(l)?)?,
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
                Cutoff::Quantile(l) => conformal_quantile(&scores, level_ok(l)?)?,
                Cutoff::ChiSquare(l) => chi2_quantile(level_ok(l)?, d as f64),
                Cutoff::Boundary => return Err(Error::Data("cutoff `boundary` applies to method `radius` only".into())),
            };
            Ok(Fitted { threshold, gaussian: Some((mean, precision)), shrinkage: s })
        }
    }
}

/// Chi-square CDF with `k` degrees of freedom at `x` (statrs' regularised incomplete gamma).
pub fn chi2_cdf(x: f64, k: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    ChiSquared::new(k).map(|d| d.cdf(x)).unwrap_or(f64::NAN)
}

/// The `p` quantile of chi-square with `k` degrees of freedom (statrs' inverse CDF): the squared
/// Mahalanobis distance a Gaussian code exceeds with probability 1 - `p` (`k` = the code's
/// dimension). NaN for `k` <= 0.
pub fn chi2_quantile(p: f64, k: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    ChiSquared::new(k).map(|d| d.inverse_cdf(p)).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_quantiles_match_tables() {
        assert!((chi2_quantile(0.95, 1.0) - 3.841459).abs() < 1e-4);
        assert!((chi2_quantile(0.95, 32.0) - 46.19426).abs() < 1e-3);
        assert!((chi2_quantile(0.99, 128.0) - 168.1332).abs() < 1e-2);
        assert!((chi2_cdf(chi2_quantile(0.95, 32.0), 32.0) - 0.95).abs() < 1e-9);
        assert!(chi2_quantile(0.95, 0.0).is_nan());
    }

    #[test]
    fn the_conformal_threshold_is_the_ceil_n_plus_1_level_order_statistic() {
        let v: Vec<f64> = (1..=99).rev().map(f64::from).collect(); // 99 .. 1, unsorted
                                                                   // k = ceil(100 * 0.95) = 95: the 95th smallest (numpy's interpolation would give 94.1).
        assert_eq!(conformal_quantile(&v, 0.95).unwrap(), 95.0);
        // 19 rows at 0.95: k = ceil(19) = 19, the largest; 18 rows: k = 19 > 18, refused.
        assert_eq!(conformal_quantile(&v[..19], 0.95).unwrap(), 99.0);
        let e = conformal_quantile(&v[..18], 0.95).unwrap_err().to_string();
        assert!(e.contains("18 calibration scores are too few") && e.contains("at least 19"), "{e}");
        // 540 rows at 0.95: k = ceil(541 x 0.95) = ceil(513.95) = 514.
        let w: Vec<f64> = (0..540).map(f64::from).collect();
        assert_eq!(conformal_quantile(&w, 0.95).unwrap(), 513.0);
        // n = 1 at level 0.5: k = ceil(1) = 1.
        assert_eq!(conformal_quantile(&[7.0], 0.5).unwrap(), 7.0);
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
