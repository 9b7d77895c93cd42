//! Paired comparisons of replicated results (seeds): the paired t-test with its interval, the
//! Wilcoxon signed-rank test, and Holm's adjustment over a family of comparisons. `pipe compare`
//! and the report stage's verdict column both decide "better" / "worse" with these, on the
//! Holm-adjusted t-test p below [`ALPHA`] (the report's comparison across classes, on the Wilcoxon
//! p). Also Spearman's rank correlation (the Grad-CAM randomisation check). Each function states
//! what it equals in scipy or statsmodels.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The significance level of the verdict (on the Holm-adjusted t-test p).
pub const ALPHA: f64 = 0.05;
/// The coverage of the interval of the mean difference.
pub const CONFIDENCE: f64 = 0.95;
/// The fewest pairs for which the Wilcoxon signed-rank p is given (below it the two-sided p can
/// never be under 0.05: with 5 pairs the smallest is 2/32 = 0.0625).
pub const WILCOXON_MIN_PAIRS: usize = 6;
/// The most pairs for which the Wilcoxon p comes from the exact null distribution (when there are
/// neither ties nor zero differences); above, and with ties or zeros, the normal approximation.
pub const WILCOXON_EXACT_MAX: usize = 25;

/// How the Wilcoxon p was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WilcoxonMethod {
    /// The exact null distribution of the signed-rank sum ([`signed_rank_counts`]).
    Exact,
    /// The normal approximation with the tie correction, without continuity correction.
    Normal,
}

impl WilcoxonMethod {
    pub fn name(self) -> &'static str {
        match self {
            WilcoxonMethod::Exact => "exact",
            WilcoxonMethod::Normal => "normal",
        }
    }
}

/// The Wilcoxon signed-rank test of paired differences.
#[derive(Clone, Copy, Debug)]
pub struct Wilcoxon {
    /// min(R+, R-), the statistic as scipy reports it.
    pub statistic: f64,
    /// Two-sided p.
    pub p: f64,
    pub method: WilcoxonMethod,
}

/// Mean and sample standard deviation (n - 1; NaN for fewer than 2 values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
    (mean, std)
}

/// The paired t-test of differences `d` (at least 2): (t, two-sided p, 95% interval of the mean).
/// t = mean / (std / sqrt(n)) with n - 1 degrees of freedom (Student 1908; scipy.stats.ttest_rel).
/// Where every difference is the same the test is degenerate: p = 1 when they are all zero, else 0
/// (t infinite), and the interval is that one value.
pub fn paired_t(d: &[f64]) -> (f64, f64, (f64, f64)) {
    let n = d.len();
    let (mean, std) = mean_std(d);
    if std == 0.0 {
        let (t, p) = if mean == 0.0 { (f64::NAN, 1.0) } else { (mean.signum() * f64::INFINITY, 0.0) };
        return (t, p, (mean, mean));
    }
    let se = std / (n as f64).sqrt();
    let t = mean / se;
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n >= 2 degrees of freedom");
    let p = (2.0 * dist.sf(t.abs())).min(1.0);
    let q = dist.inverse_cdf(0.5 + CONFIDENCE / 2.0);
    (t, p, (mean - q * se, mean + q * se))
}

/// The number of subsets of {1, ..., n} with each sum k = 0 ..= n(n+1)/2: under the null
/// hypothesis of the Wilcoxon signed-rank test (no ties, no zeros), each rank is positive with
/// probability 1/2 independently, so P(R+ = k) = counts[k] / 2^n (Wilcoxon 1945, "Individual
/// comparisons by ranking methods", Biometrics Bulletin 1(6):80-83). Built one rank at a time, as
/// the subset-sum recursion c_n(k) = c_{n-1}(k) + c_{n-1}(k - n). Exact in u64 for n <= 60.
pub fn signed_rank_counts(n: usize) -> Vec<u64> {
    let max = n * (n + 1) / 2;
    let mut c = vec![0u64; max + 1];
    c[0] = 1;
    for rank in 1..=n {
        for k in (rank..=rank * (rank + 1) / 2).rev() {
            c[k] += c[k - rank];
        }
    }
    c
}

/// The exact two-sided p of the signed-rank sum `r_plus` over `n` pairs (no ties, no zeros):
/// 2 min(P(R+ <= r_plus), P(R+ >= r_plus)), at most 1, as scipy.stats.wilcoxon(method="exact").
pub fn signed_rank_exact_p(n: usize, r_plus: u64) -> f64 {
    let c = signed_rank_counts(n);
    let total = 2f64.powi(n as i32);
    let k = r_plus as usize;
    let below: u64 = c[..=k.min(c.len() - 1)].iter().sum();
    let above: u64 = c[k.min(c.len())..].iter().sum();
    (2.0 * below.min(above) as f64 / total).min(1.0)
}

/// The Wilcoxon signed-rank test of paired differences `d`, two-sided (Wilcoxon 1945). Zero
/// differences are dropped (Wilcoxon's own rule, scipy's `zero_method="wilcox"`); the absolute
/// differences are ranked, ties sharing their average rank. With at most [`WILCOXON_EXACT_MAX`]
/// nonzero differences and neither ties nor zeros, p comes from the exact null distribution
/// ([`signed_rank_counts`]); otherwise from the normal approximation z = (R+ - n(n+1)/4) / s with
/// s^2 = (n(n+1)(2n+1) - sum(t^3 - t)/2) / 24 over the tie groups t, no continuity correction,
/// p = 2 P(Z > |z|), as scipy.stats.wilcoxon(method="asymptotic") computes it. None when every
/// difference is zero.
pub fn wilcoxon(d: &[f64]) -> Option<Wilcoxon> {
    let mut nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let zeros = nz.len() < d.len();
    let n = nz.len();
    if n == 0 {
        return None;
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let (mut r_plus, mut r_minus, mut tie_term, mut ties) = (0.0, 0.0, 0.0, false);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && nz[j].abs() == nz[i].abs() {
            j += 1;
        }
        let t = (j - i) as f64;
        let rank = (i + 1 + j) as f64 / 2.0;
        if j - i > 1 {
            ties = true;
            tie_term += t * t * t - t;
        }
        for x in &nz[i..j] {
            if *x > 0.0 {
                r_plus += rank;
            } else {
                r_minus += rank;
            }
        }
        i = j;
    }
    let statistic = f64::min(r_plus, r_minus);
    if n <= WILCOXON_EXACT_MAX && !ties && !zeros {
        return Some(Wilcoxon { statistic, p: signed_rank_exact_p(n, r_plus as u64), method: WilcoxonMethod::Exact });
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_term / 2.0) / 24.0).sqrt();
    let z = (r_plus - mean) / se;
    let p = (2.0 * Normal::standard().sf(z.abs())).min(1.0);
    Some(Wilcoxon { statistic, p, method: WilcoxonMethod::Normal })
}

/// Holm's step-down adjustment of p-values (Holm 1979, "A simple sequentially rejective multiple
/// test procedure", Scandinavian Journal of Statistics 6(2):65-70): with the m p-values sorted
/// ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)); rejecting where the
/// adjusted p is below alpha controls the family-wise error rate at alpha. Returned in the input's
/// order; equal to statsmodels' `multipletests(p, method="holm")[1]`. A NaN counts as 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let clean: Vec<f64> = p.iter().map(|x| if x.is_nan() { 1.0 } else { *x }).collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * clean[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Spearman's rank correlation of two equally long samples (ties share their mean rank, as
/// scipy.stats.spearmanr ranks them); NaN where either is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (ra.iter().map(|x| (x - ma).powi(2)).sum(), rb.iter().map(|y| (y - mb).powi(2)).sum());
    cov / (va * vb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against scipy 1.17: spearmanr([1, 2, 2, 5, 0, 0], [3, 1, 4, 1, 5, 9]) = -0.8508410434878082
    /// (ties in both); a monotone map is 1.
    #[test]
    fn spearman_ranks_ties_as_scipy_does() {
        let r = spearman(&[1.0, 2.0, 2.0, 5.0, 0.0, 0.0], &[3.0, 1.0, 4.0, 1.0, 5.0, 9.0]);
        assert!((r - -0.8508410434878082).abs() < 1e-12, "{r}");
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 300.0]) - 1.0).abs() < 1e-12);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }
}
