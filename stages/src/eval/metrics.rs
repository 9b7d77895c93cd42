//! Detection metrics with the anomaly class positive and higher scores more anomalous: ROC AUC
//! (ties get half credit), ROC points, AUPRC (average precision), precision/recall/F1 at a
//! threshold, and the oracle best F1 over all test thresholds.

use crate::{Error, Result};

fn check(scores: &[f64], labels: &[i64]) -> Result<(usize, usize)> {
    if scores.len() != labels.len() {
        return Err(Error::Data(format!("{} scores but {} labels", scores.len(), labels.len())));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Data(format!("score {s} is not finite; the model diverged")));
    }
    let pos = labels.iter().filter(|l| **l == 1).count();
    let neg = labels.len() - pos;
    if labels.iter().any(|l| *l != 0 && *l != 1) {
        return Err(Error::Data("labels must be 0 (normal) or 1 (anomaly)".into()));
    }
    if pos == 0 || neg == 0 {
        return Err(Error::Data(format!(
            "the test set holds only {} images; AUC needs both normal and anomalous ones",
            if pos == 0 { "normal" } else { "anomalous" }
        )));
    }
    Ok((pos, neg))
}

/// Distinct thresholds in decreasing order with cumulative (true, false) positives at each.
fn sweep(scores: &[f64], labels: &[i64]) -> Vec<(f64, usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out: Vec<(f64, usize, usize)> = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] == 1 {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_tie {
            out.push((scores[i], tp, fp));
        }
    }
    out
}

/// ROC AUC by the trapezoid rule over tied-score groups (equals the Mann-Whitney statistic).
pub fn roc_auc(scores: &[f64], labels: &[i64]) -> Result<f64> {
    let (pos, neg) = check(scores, labels)?;
    let mut area = 0.0;
    let (mut ptp, mut pfp) = (0usize, 0usize);
    for (_, tp, fp) in sweep(scores, labels) {
        area += (fp - pfp) as f64 * (tp + ptp) as f64 / 2.0;
        ptp = tp;
        pfp = fp;
    }
    Ok(area / (pos as f64 * neg as f64))
}

/// ROC points (fpr, tpr, threshold), starting at (0, 0).
pub fn roc_curve(scores: &[f64], labels: &[i64]) -> Result<Vec<(f64, f64, f64)>> {
    let (pos, neg) = check(scores, labels)?;
    let mut pts = vec![(0.0, 0.0, f64::INFINITY)];
    for (t, tp, fp) in sweep(scores, labels) {
        pts.push((fp as f64 / neg as f64, tp as f64 / pos as f64, t));
    }
    Ok(pts)
}

/// TPR at a nominal FPR `alpha`: the highest TPR among the points of the ROC curve `roc`
/// (from [`roc_curve`]) whose FPR is at most `alpha`, as a step (no interpolation between
/// points). What a threshold set on the TEST set to flag `alpha` of its normals would catch: the
/// yardstick for the threshold fitted on training data, whose own TPR is the recall at it.
pub fn tpr_at_fpr(roc: &[(f64, f64, f64)], alpha: f64) -> f64 {
    roc.iter().filter(|p| p.0 <= alpha + 1e-12).map(|p| p.1).fold(0.0, f64::max)
}

/// Average precision: sum over thresholds of (R_n - R_{n-1}) * P_n (scikit-learn's definition).
pub fn average_precision(scores: &[f64], labels: &[i64]) -> Result<f64> {
    let (pos, _) = check(scores, labels)?;
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (_, tp, fp) in sweep(scores, labels) {
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Ok(ap)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classification {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

/// Whether a score is flagged anomalous by a threshold: strictly above it (a score equal to the
/// threshold is normal), as [`classify`] counts.
pub fn flagged(score: f64, threshold: f64) -> bool {
    score > threshold
}

/// A shown image's score against its model's threshold, for captions: `0.412 > t` where flagged,
/// `0.205 ≤ t` where not, `0.412` without a threshold (or for a score that is not a number). Three
/// decimals, more where three would print the score as the threshold (`0.3804 > t` for t = 0.3801).
pub fn versus_threshold(score: f64, threshold: Option<f64>) -> String {
    let Some(t) = threshold.filter(|_| score.is_finite()) else { return format!("{score:.3}") };
    let mut decimals = 3;
    while decimals < 9 && format!("{score:.decimals$}") == format!("{t:.decimals$}") {
        decimals += 1;
    }
    format!("{score:.decimals$} {} t", if flagged(score, t) { ">" } else { "≤" })
}

/// Predicts anomaly when score > threshold ([`flagged`]). Precision is 0 when nothing is flagged.
pub fn classify(scores: &[f64], labels: &[i64], threshold: f64) -> Result<Classification> {
    check(scores, labels)?;
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    for (s, l) in scores.iter().zip(labels) {
        match (flagged(*s, threshold), *l == 1) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let precision = if tp + fp == 0 { 0.0 } else { tp as f64 / (tp + fp) as f64 };
    let recall = tp as f64 / (tp + fn_) as f64;
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Ok(Classification { precision, recall, f1, tp, fp, fn_, tn })
}

/// Best F1 over every threshold on the TEST set: an oracle (it reads the test labels), reported
/// only for comparison with the published table. Returns (f1, threshold).
pub fn oracle_f1(scores: &[f64], labels: &[i64]) -> Result<(f64, f64)> {
    let (pos, _) = check(scores, labels)?;
    let mut best = (0.0, f64::INFINITY);
    for (t, tp, fp) in sweep(scores, labels) {
        let p = tp as f64 / (tp + fp) as f64;
        let r = tp as f64 / pos as f64;
        let f1 = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
        if f1 > best.0 {
            best = (f1, t);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A score equal to the threshold is normal, in captions as in the counts.
    #[test]
    fn a_caption_says_which_side_of_the_threshold_a_score_is() {
        assert_eq!(versus_threshold(0.4123, Some(0.38)), "0.412 > t");
        assert_eq!(versus_threshold(0.38, Some(0.38)), "0.380000000 ≤ t");
        assert_eq!(versus_threshold(0.38041, Some(0.38012)), "0.3804 > t");
        assert_eq!(versus_threshold(0.2051, None), "0.205");
        assert_eq!(versus_threshold(f64::NAN, Some(0.38)), "NaN");
        let c = classify(&[0.38, 0.39, 0.38, 0.39], &[1, 1, 0, 0], 0.38).unwrap();
        assert_eq!((c.tp, c.fn_, c.fp, c.tn), (1, 1, 1, 1));
    }

    #[test]
    fn auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
        assert_eq!(roc_auc(&[0.9, 0.4, 0.5, 0.1], &[1, 1, 0, 0]).unwrap(), 0.75);
        assert_eq!(roc_auc(&[1.0, 2.0], &[0, 1]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[2.0, 1.0], &[0, 1]).unwrap(), 0.0);
    }

    #[test]
    fn ties_get_half_credit() {
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &[1, 0, 1, 0]).unwrap(), 0.5);
        // One positive tied with one negative, one positive above: (1 + 0.5) / 2.
        assert_eq!(roc_auc(&[0.7, 0.3, 0.3], &[1, 1, 0]).unwrap(), 0.75);
    }

    #[test]
    fn one_class_only_is_an_error() {
        assert!(roc_auc(&[0.1, 0.2], &[1, 1]).unwrap_err().to_string().contains("only anomalous"));
        assert!(average_precision(&[0.1, 0.2], &[0, 0]).unwrap_err().to_string().contains("only normal"));
        assert!(roc_auc(&[f64::NAN, 0.2], &[0, 1]).is_err());
    }

    #[test]
    fn tpr_at_a_nominal_fpr_by_hand() {
        // Normals 0.1 0.2 0.3 0.4, anomalies 0.35 0.5 0.6. Flagging at most 1 of the 4 normals
        // (FPR 0.25) catches all three anomalies (threshold 0.35: 0.4 is the one normal above);
        // flagging none catches 0.5 and 0.6; FPR 0.2 < 0.25 allows no normal either.
        let (s, l) = ([0.1, 0.2, 0.3, 0.4, 0.35, 0.5, 0.6], [0, 0, 0, 0, 1, 1, 1]);
        let roc = roc_curve(&s, &l).unwrap();
        assert_eq!(tpr_at_fpr(&roc, 0.25), 1.0);
        assert_eq!(tpr_at_fpr(&roc, 0.0), 2.0 / 3.0);
        assert_eq!(tpr_at_fpr(&roc, 0.2), 2.0 / 3.0);
        assert_eq!(tpr_at_fpr(&roc, 1.0), 1.0);
    }

    #[test]
    fn average_precision_by_hand() {
        // Sorted: 0.9(+) 0.8(-) 0.7(+): P@1 = 1, R 0.5; P@3 = 2/3, R 1 -> 0.5*1 + 0.5*2/3.
        let ap = average_precision(&[0.9, 0.8, 0.7], &[1, 0, 1]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn f1_at_threshold_and_oracle() {
        let s = [0.9, 0.8, 0.7, 0.2];
        let l = [1, 0, 1, 0];
        let c = classify(&s, &l, 0.75).unwrap();
        assert_eq!((c.tp, c.fp, c.fn_, c.tn), (1, 1, 1, 1));
        assert_eq!(c.f1, 0.5);
        let (f1, t) = oracle_f1(&s, &l).unwrap();
        assert!((f1 - 0.8).abs() < 1e-12 && t == 0.7, "{f1} {t}");
        // Everything flagged: F1 = 2 * 0.9 / 1.9 with 10% normals, the report's CIFAR "result".
        let labels: Vec<i64> = (0..1000).map(|i| i64::from(i >= 100)).collect();
        let scores = vec![1.0; 1000];
        assert!((classify(&scores, &labels, 0.0).unwrap().f1 - 2.0 * 0.9 / 1.9).abs() < 1e-12);
    }

    #[test]
    fn roc_points_run_from_origin_to_one() {
        let pts = roc_curve(&[0.9, 0.4, 0.5, 0.1], &[1, 1, 0, 0]).unwrap();
        assert_eq!(pts.first().unwrap().0, 0.0);
        assert_eq!(*pts.last().unwrap(), (1.0, 1.0, 0.1));
    }
}
