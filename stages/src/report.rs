//! The report: variant names, the published numbers (the re-experiment's table and Ruff et al.'s
//! Table 1, from the reference facts), and the markdown comparing ours with them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One evaluated configuration (one row of `results.parquet`).
#[derive(Clone, Debug)]
pub struct ResultRow {
    pub dataset: String,
    pub normal_class: i64,
    /// The Deep SVDD term's weight the model trained with: `None` where the run did not record it
    /// (no `mu1` column and no training history for the row).
    pub mu1: Option<f64>,
    pub mu2: f64,
    pub method: String,
    pub seed: i64,
    pub auc: f64,
    pub oracle_f1: f64,
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub auprc: f64,
}

/// The report's experiment names: baseline (mu2 = 0, radius threshold), hybrid (mu2 > 0),
/// adaptive (Mahalanobis score on the baseline model). A weight mu1 other than 1 (the published
/// study's) is named, so such a run is never filed under a published row; an unrecorded mu1 is
/// not claimed to be 1 for a hybrid.
pub fn variant(mu1: Option<f64>, mu2: f64, method: &str) -> String {
    let other_mu1 = match mu1 {
        Some(m) if m != 1.0 => format!(", mu1={}", short(m)),
        _ => String::new(),
    };
    match (mu2 == 0.0, method) {
        (true, "radius") => format!("baseline Deep SVDD{other_mu1}"),
        (true, "mahalanobis") => format!("adaptive (Mahalanobis){other_mu1}"),
        (true, m) => format!("baseline + {m} threshold{other_mu1}"),
        (false, "radius") => match mu1 {
            Some(m) => format!("hybrid mu1={}, mu2={mu2:?}", short(m)),
            None => format!("hybrid mu2={mu2:?} (mu1 not recorded)"),
        },
        (false, m) => format!("hybrid mu2={mu2:?} + {m}{other_mu1}"),
    }
}

/// A weight as the published labels print it: `1`, `0.5`, `2`.
fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The loss weights (mu1, mu2) a Deep SVDD model trained with, recovered from its training history:
/// every epoch's logged loss is mu1 x svdd + mu2 x reconstruction (reconstruction NaN when mu2 = 0),
/// solved by least squares over the epochs and rounded to 6 significant digits (the terms are
/// float32). `None` when the history is empty or does not determine them.
pub fn loss_weights(loss: &[f64], svdd: &[f64], rec: &[f64]) -> Option<(f64, f64)> {
    let round = |x: f64| {
        if x == 0.0 || !x.is_finite() {
            return x;
        }
        let scale = 10f64.powi(5 - x.abs().log10().floor() as i32);
        (x * scale).round() / scale
    };
    let rows: Vec<(f64, f64, f64)> =
        loss.iter().zip(svdd).zip(rec).map(|((&l, &s), &r)| (l, s, r)).filter(|(l, s, _)| l.is_finite() && s.is_finite()).collect();
    if rows.is_empty() {
        return None;
    }
    if rows.iter().all(|(_, _, r)| !r.is_finite()) {
        let (sl, ss) = rows.iter().fold((0.0, 0.0), |(a, b), (l, s, _)| (a + l * s, b + s * s));
        return (ss > 0.0).then(|| (round(sl / ss), 0.0));
    }
    let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (l, s, r) in rows.iter().filter(|(_, _, r)| r.is_finite()) {
        a11 += s * s;
        a12 += s * r;
        a22 += r * r;
        b1 += s * l;
        b2 += r * l;
    }
    let det = a11 * a22 - a12 * a12;
    if det.abs() <= 1e-12 * a11 * a22 {
        return None;
    }
    Some((round((b1 * a22 - b2 * a12) / det), round((a11 * b2 - a12 * b1) / det)))
}

pub fn dataset_title(d: &str) -> &str {
    match d {
        "mnist" => "MNIST",
        "fashion-mnist" => "Fashion-MNIST",
        "cifar10" => "CIFAR-10",
        other => other,
    }
}

/// One published cell: (dataset, AUC, oracle F1).
pub type Published = (&'static str, f64, f64);

/// The re-experiment's table (normal class 0, one run each): experiment -> dataset -> (AUC, oracle F1).
pub fn published() -> Vec<(&'static str, [Published; 3])> {
    vec![
        ("baseline Deep SVDD", [("fashion-mnist", 0.9092, 0.9634), ("mnist", 0.9814, 0.9825), ("cifar10", 0.6074, 0.9474)]),
        ("hybrid mu1=1, mu2=0.1", [("fashion-mnist", 0.9064, 0.9633), ("mnist", 0.9813, 0.9869), ("cifar10", 0.5768, 0.9475)]),
        ("hybrid mu1=1, mu2=0.5", [("fashion-mnist", 0.9135, 0.9633), ("mnist", 0.9754, 0.9820), ("cifar10", 0.6100, 0.9475)]),
        ("hybrid mu1=1, mu2=1.0", [("fashion-mnist", 0.9067, 0.9614), ("mnist", 0.9863, 0.9879), ("cifar10", 0.5432, 0.9474)]),
        ("hybrid mu1=1, mu2=2.0", [("fashion-mnist", 0.8902, 0.9612), ("mnist", 0.9751, 0.9809), ("cifar10", 0.6306, 0.9474)]),
        ("adaptive (Mahalanobis)", [("fashion-mnist", 0.8865, 0.9561), ("mnist", 0.9848, 0.9858), ("cifar10", 0.6142, 0.9474)]),
    ]
}

/// Ruff et al. 2018, Table 1, One-Class Deep SVDD AUC % (mean, std over 10 seeds) per class.
pub fn ruff_table1(dataset: &str) -> Option<[(f64, f64); 10]> {
    match dataset {
        "mnist" => {
            Some([(98.0, 0.7), (99.7, 0.1), (91.7, 0.8), (91.9, 1.5), (94.9, 0.8), (88.5, 0.9), (98.3, 0.5), (94.6, 0.9), (93.9, 1.6), (96.5, 0.3)])
        }
        "cifar10" => {
            Some([(61.7, 4.1), (65.9, 2.1), (50.8, 0.8), (59.1, 1.4), (60.9, 1.1), (65.7, 2.5), (67.7, 2.6), (67.3, 0.9), (75.9, 1.2), (73.1, 1.2)])
        }
        _ => None,
    }
}

/// One trained model's two loss terms (Deep SVDD: mean squared distance to the centre;
/// reconstruction: squared error summed over pixels, mean over the batch) at its first and last
/// epoch, from its training history.
#[derive(Clone, Debug)]
pub struct LossTerms {
    pub dataset: String,
    pub mu2: f64,
    pub first: (f64, f64),
    pub last: (f64, f64),
}

/// A markdown section with the terms' magnitudes per dataset and mu2 (mean over seeds), so the
/// mu2 axis reads: mu2 weighs a reconstruction error summed over hundreds of pixels against
/// distances near 0.01-0.1. Empty when there are no hybrids.
pub fn loss_terms(terms: &[LossTerms]) -> String {
    let mut groups: BTreeMap<(String, u64), Vec<&LossTerms>> = BTreeMap::new();
    for t in terms {
        groups.entry((t.dataset.clone(), t.mu2.to_bits())).or_default().push(t);
    }
    if !groups.keys().any(|(_, m)| f64::from_bits(*m) > 0.0) {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n## The hybrid's two loss terms (mean over seeds)\n");
    let _ = writeln!(
        out,
        "Deep SVDD term: mean squared distance to the centre. Reconstruction term: squared error summed over the pixels, mean over \
         the batch (the hybrid minimises SVDD + mu2 x reconstruction). The last column is the weighted reconstruction's share \
         of the loss at the last epoch.\n"
    );
    let _ = writeln!(out, "| dataset | mu2 | SVDD first / last epoch | reconstruction first / last epoch | mu2 x rec / (SVDD + mu2 x rec), last |\n|---|---|---|---|---|");
    for ((d, m), ts) in &groups {
        let mu2 = f64::from_bits(*m);
        let mean = |f: fn(&LossTerms) -> f64| ts.iter().map(|t| f(t)).sum::<f64>() / ts.len() as f64;
        let (s0, r0, s1, r1) = (mean(|t| t.first.0), mean(|t| t.first.1), mean(|t| t.last.0), mean(|t| t.last.1));
        let share = if mu2 > 0.0 { format!("{:.3}", mu2 * r1 / (s1 + mu2 * r1)) } else { "- (baseline)".into() };
        let rec = if r0.is_finite() && r1.is_finite() { format!("{r0:.2} / {r1:.2}") } else { "- (not trained)".into() };
        let _ = writeln!(out, "| {} | {mu2:?} | {s0:.4} / {s1:.4} | {rec} | {share} |", dataset_title(d));
    }
    out
}

/// The baseline a row's variant is compared with, one factor at a time: a hybrid (mu2 > 0) against
/// the baseline model under the same threshold method (mu2 = 0, same method, same mu1); another
/// threshold method on the baseline model (adaptive) against the radius baseline. None for the
/// radius baseline itself.
fn baseline_of(r: &ResultRow) -> Option<String> {
    match (r.mu2 == 0.0, r.method.as_str()) {
        (true, "radius") => None,
        (true, _) => Some(variant(r.mu1, 0.0, "radius")),
        (false, m) => Some(variant(r.mu1, 0.0, m)),
    }
}

/// One comparison: a variant against its one-factor baseline ([`baseline_of`]), and the paired
/// differences (variant - baseline, AUC).
struct Cmp {
    dataset: String,
    name: String,
    against: String,
    diffs: Vec<f64>,
}

/// What a paired comparison pairs on: the seeds of one class, or the normal classes.
#[derive(Clone, Copy)]
enum Pairing {
    /// Seed by seed (normal class 0); the verdict from the paired t-test.
    Seeds,
    /// Class by class, each class's difference the mean over the seeds both configurations
    /// have; the verdict from the Wilcoxon signed-rank test, as Demšar 2006 (JMLR 7, s. 3.1.3)
    /// advises for comparisons over several data sets (AUCs of different classes are on
    /// different scales, their differences not normal).
    Classes,
}

/// The variants of `rows` of dataset `d` with the baseline each is compared with.
fn variants_of(rows: &[&ResultRow], d: &str) -> Vec<(String, String)> {
    let mut variants: Vec<(String, f64, String, String)> =
        rows.iter().filter(|r| r.dataset == d).filter_map(|r| Some((r.method.clone(), r.mu2, label(r), baseline_of(r)?))).collect();
    variants.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    variants.dedup();
    variants.into_iter().map(|v| (v.2, v.3)).collect()
}

/// Seed-paired comparisons of one class's rows.
fn seed_pairs(class0: &[&ResultRow], datasets: &[String]) -> Vec<Cmp> {
    let mut cmps = Vec::new();
    for d in datasets {
        for (name, against) in variants_of(class0, d) {
            let base: BTreeMap<i64, f64> = class0.iter().filter(|r| &r.dataset == d && label(r) == against).map(|r| (r.seed, r.auc)).collect();
            let diffs: Vec<f64> =
                class0.iter().filter(|r| &r.dataset == d && label(r) == name).filter_map(|r| base.get(&r.seed).map(|b| r.auc - b)).collect();
            if !diffs.is_empty() {
                cmps.push(Cmp { dataset: d.clone(), name, against, diffs });
            }
        }
    }
    cmps
}

/// Class-paired comparisons: per class, the mean of the seed-paired differences over the seeds
/// both configurations have (a seed one of them lacks is left out of that class, never averaged
/// on one side only). Also how many (comparison, class) pairs lost a seed that way.
fn class_pairs(rows: &[&ResultRow], datasets: &[String]) -> (Vec<Cmp>, usize) {
    let (mut cmps, mut short) = (Vec::new(), 0);
    for d in datasets {
        for (name, against) in variants_of(rows, d) {
            let seeds = |l: &str| -> BTreeMap<(i64, i64), f64> {
                rows.iter().filter(|r| &r.dataset == d && label(r) == l).map(|r| ((r.normal_class, r.seed), r.auc)).collect()
            };
            let (v, b) = (seeds(&name), seeds(&against));
            let mut per_class: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for ((c, seed), auc) in &v {
                if let Some(base) = b.get(&(*c, *seed)) {
                    per_class.entry(*c).or_default().push(auc - base);
                }
            }
            for (c, diffs) in &per_class {
                let both: std::collections::BTreeSet<i64> = v.keys().chain(b.keys()).filter(|(k, _)| k == c).map(|(_, s)| *s).collect();
                short += usize::from(diffs.len() < both.len());
            }
            let diffs: Vec<f64> = per_class.values().map(|d| d.iter().sum::<f64>() / d.len() as f64).collect();
            if !diffs.is_empty() {
                cmps.push(Cmp { dataset: d.clone(), name, against, diffs });
            }
        }
    }
    (cmps, short)
}

/// The comparisons as a markdown section: per comparison the mean difference, its 95% Student t
/// interval, the paired t-test's p, the Wilcoxon signed-rank p where there are at least 6 pairs,
/// and the verdict test's p (t for seeds, Wilcoxon for classes: [`Pairing`]) adjusted by Holm's
/// method over every comparison shown. "better"/"worse" only where the adjusted p is below 0.05,
/// as `pipe compare` decides ([`stats`]); too few pairs give no test.
fn paired_differences(out: &mut String, cmps: &[Cmp], pairing: Pairing) {
    use stats::{holm, paired_t, wilcoxon, ALPHA, WILCOXON_MIN_PAIRS};
    if cmps.is_empty() {
        return;
    }
    /// One comparison's tests: the paired t-test's p and interval, the Wilcoxon p (NaN below
    /// its fewest pairs).
    struct Tests {
        t: f64,
        interval: (f64, f64),
        wilcoxon: f64,
    }
    let tests: Vec<Option<Tests>> = cmps
        .iter()
        .map(|c| {
            let n = c.diffs.len();
            let wilcoxon = if n >= WILCOXON_MIN_PAIRS { wilcoxon(&c.diffs).map_or(f64::NAN, |w| w.p) } else { f64::NAN };
            (n > 1).then(|| paired_t(&c.diffs)).map(|(_, t, interval)| Tests { t, interval, wilcoxon })
        })
        .collect();
    // The p a verdict rests on: the t-test's or the Wilcoxon test's ([`Pairing`]).
    let verdict_p = |t: &Tests| match pairing {
        Pairing::Seeds => Some(t.t),
        Pairing::Classes => (!t.wilcoxon.is_nan()).then_some(t.wilcoxon),
    };
    let tested: Vec<f64> = tests.iter().flatten().filter_map(verdict_p).collect();
    let mut adjusted = holm(&tested).into_iter();
    let (heading, paired_by, unit, test) = match pairing {
        Pairing::Seeds => ("Paired differences, one factor at a time (AUC, same seeds)", "paired by seed", "seeds", "the paired t-test's p"),
        Pairing::Classes => (
            "Across classes, one factor at a time (AUC; each normal class one pair)",
            "paired by normal class, each class's difference the mean over the seeds both have (Demšar 2006: classifiers compared \
             over several data sets, one pair per data set, by the Wilcoxon signed-rank test)",
            "classes",
            "the Wilcoxon p",
        ),
    };
    let _ = writeln!(out, "\n## {heading}\n");
    let _ = writeln!(
        out,
        "Each variant minus the configuration that differs from it in one factor only (a hybrid against the baseline model under the \
         same threshold; the adaptive threshold against the radius baseline), {paired_by}. 95% interval from Student's t with n-1 \
         degrees of freedom; p from the paired t-test; the Wilcoxon signed-rank p from {WILCOXON_MIN_PAIRS} pairs on; Holm's \
         adjustment of {test} over the {} tested comparisons below. A verdict is `better` or `worse` only where the Holm-adjusted p \
         is below {ALPHA}.\n",
        tested.len()
    );
    let _ = writeln!(
        out,
        "| dataset | variant | against | mean difference | 95% interval | p (t) | p (Wilcoxon) | p (Holm) | verdict | {unit} |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut shown = 0;
    for (c, test) in cmps.iter().zip(&tests) {
        let n = c.diffs.len();
        let m = c.diffs.iter().sum::<f64>() / n as f64;
        let cells = match test.as_ref().map(|t| (t, verdict_p(t))) {
            Some((&Tests { t: p, interval: (lo, hi), wilcoxon: w }, Some(_))) => {
                let adj = adjusted.next().unwrap_or(f64::NAN);
                let verdict = match (adj < ALPHA, m > 0.0) {
                    (true, true) => "better",
                    (true, false) if m < 0.0 => "worse",
                    _ => "no difference shown",
                };
                if adj < ALPHA {
                    shown += 1;
                }
                format!("[{lo:+.4}, {hi:+.4}] | {} | {} | {} | {verdict}", pval(p), pval(w), pval(adj))
            }
            Some((&Tests { t: p, interval: (lo, hi), wilcoxon: w }, None)) => {
                format!("[{lo:+.4}, {hi:+.4}] | {} | {} | - | fewer than {WILCOXON_MIN_PAIRS} {unit}: no test", pval(p), pval(w))
            }
            None => format!("- | - | - | - | one of the {unit}: no test"),
        };
        let _ = writeln!(out, "| {} | {} | {} | {m:+.4} | {cells} | {n} |", dataset_title(&c.dataset), c.name, c.against);
    }
    let _ = writeln!(out, "\n{shown} of {} tested comparisons differ after Holm's correction (family-wise error at most {ALPHA}).", tested.len());
}

/// A p-value as the tables print it: 4 decimals, or `< 0.0001`.
fn pval(p: f64) -> String {
    if p.is_nan() {
        "-".into()
    } else if p < 1e-4 {
        "< 0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// A row's experiment name ([`variant`]).
fn label(r: &ResultRow) -> String {
    variant(r.mu1, r.mu2, &r.method)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (m, s)
}

fn fmt(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (m, s) = mean_std(v);
    if v.len() > 1 {
        format!("{m:.4}±{s:.4}")
    } else {
        format!("{m:.4}")
    }
}

/// Ruff et al.'s protocol (every class normal in turn), when more than class 0 was run: per
/// dataset and class, each variant's AUC % (mean ± std over its seeds, and how many) beside Ruff
/// et al. 2018, Table 1 (One-Class Deep SVDD); then each variant against its one-factor baseline
/// across the classes ([`class_pairs`], [`Pairing::Classes`]).
fn all_classes(out: &mut String, rows: &[ResultRow], datasets: &[String]) {
    if !rows.iter().any(|r| r.normal_class != 0) {
        return;
    }
    // Variants in reading order: the baseline, its other thresholds, then the hybrids.
    let mut variants: Vec<(u64, bool, String, String)> =
        rows.iter().map(|r| (r.mu2.to_bits(), r.method != "radius", r.method.clone(), label(r))).collect();
    variants.sort_by(|a, b| f64::from_bits(a.0).total_cmp(&f64::from_bits(b.0)).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    variants.dedup();
    let names: Vec<String> = variants.into_iter().map(|v| v.3).collect();
    let _ = writeln!(out, "\n## All classes: AUC % per normal class, beside Ruff et al. 2018, Table 1\n");
    let _ = writeln!(out, "Mean ± std over seeds (n seeds); Ruff et al.'s column is One-Class Deep SVDD over 10 seeds, under their settings.\n");
    let _ = writeln!(out, "| dataset | class | Ruff et al. | {} |\n|---|---|---|{}", names.join(" | "), "---|".repeat(names.len()));
    for d in datasets {
        let mut classes: Vec<i64> = rows.iter().filter(|r| &r.dataset == d).map(|r| r.normal_class).collect();
        classes.sort_unstable();
        classes.dedup();
        for c in classes {
            let ruff = ruff_table1(d).map(|t| format!("{:.1}±{:.1}", t[c as usize].0, t[c as usize].1)).unwrap_or("-".into());
            let mut line = format!("| {} | {c} | {ruff} |", dataset_title(d));
            for name in &names {
                let auc: Vec<f64> =
                    rows.iter().filter(|r| &r.dataset == d && r.normal_class == c && &label(r) == name).map(|r| r.auc * 100.0).collect();
                let (m, s) = if auc.is_empty() { (f64::NAN, f64::NAN) } else { mean_std(&auc) };
                let _ = match auc.len() {
                    0 => write!(line, " - |"),
                    1 => write!(line, " {m:.1} (1) |"),
                    n => write!(line, " {m:.1}±{s:.1} ({n}) |"),
                };
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let refs: Vec<&ResultRow> = rows.iter().collect();
    let (cmps, short) = class_pairs(&refs, datasets);
    paired_differences(out, &cmps, Pairing::Classes);
    if short > 0 {
        let _ = writeln!(out, "\nIn {short} (comparison, class) pairs one side lacks a seed the other has; those classes pair the seeds both have.");
    }
}

/// The markdown report: the published table's layout with our numbers beside the published ones.
/// `note` (may be empty) is printed first, as a quote: what this run is (data, epochs, seeds).
pub fn markdown(rows: &[ResultRow], note: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Deep SVDD extensions: published vs reproduced\n");
    if !note.trim().is_empty() {
        let _ = writeln!(out, "> {}\n", note.trim().replace('\n', "\n> "));
    }
    let _ = writeln!(
        out,
        "Generated by `pipe` from the pipeline's results table. Each cell: **AUC / oracle F1** (best F1 over TEST thresholds, the \
         published figure) and, for ours, **F1@thr**: the F1 at the threshold fitted on held-out normal training images only (the \
         deployable figure; the published study had no threshold). `±` is the standard deviation over seeds (n = number of runs).\n"
    );
    let datasets: Vec<String> = {
        let mut d: Vec<String> = rows.iter().map(|r| r.dataset.clone()).collect();
        d.sort_by_key(|x| ["fashion-mnist", "mnist", "cifar10"].iter().position(|k| k == x).unwrap_or(9));
        d.dedup();
        d
    };
    let class0: Vec<&ResultRow> = rows.iter().filter(|r| r.normal_class == 0).collect();
    let _ = writeln!(out, "## Normal class 0 (the published table)\n");
    let mut header = "| experiment |".to_string();
    let mut rule = "|---|".to_string();
    for d in &datasets {
        let t = dataset_title(d);
        let _ = write!(header, " {t} published | {t} ours: AUC / oracle F1 / F1@thr (n) |");
        rule.push_str("---|---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut experiments: Vec<String> = published().iter().map(|(e, _)| e.to_string()).collect();
    for r in &class0 {
        let v = label(r);
        if !experiments.contains(&v) {
            experiments.push(v);
        }
    }
    for e in &experiments {
        let mut line = format!("| {e} |");
        for d in &datasets {
            let pubd = published().into_iter().find(|(x, _)| x == e).and_then(|(_, cols)| cols.into_iter().find(|(k, _, _)| k == d));
            match pubd {
                Some((_, auc, f1)) => {
                    let _ = write!(line, " {auc:.4} / {f1:.4} |");
                }
                None => line.push_str(" - |"),
            }
            let ours: Vec<&&ResultRow> = class0.iter().filter(|r| &r.dataset == d && label(r) == *e).collect();
            if ours.is_empty() {
                line.push_str(" not run |");
            } else {
                let pick = |f: fn(&ResultRow) -> f64| ours.iter().map(|r| f(r)).collect::<Vec<f64>>();
                let _ = write!(line, " {} / {} / {} ({}) |", fmt(&pick(|r| r.auc)), fmt(&pick(|r| r.oracle_f1)), fmt(&pick(|r| r.f1)), ours.len());
            }
        }
        let _ = writeln!(out, "{line}");
    }
    paired_differences(&mut out, &seed_pairs(&class0, &datasets), Pairing::Seeds);
    all_classes(&mut out, rows, &datasets);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(d: &str, mu2: f64, method: &str, seed: i64, auc: f64) -> ResultRow {
        ResultRow {
            dataset: d.into(),
            normal_class: 0,
            mu1: Some(1.0),
            mu2,
            method: method.into(),
            seed,
            auc,
            oracle_f1: 0.9,
            f1: 0.5,
            precision: 0.5,
            recall: 0.5,
            auprc: 0.9,
        }
    }

    #[test]
    fn table_has_published_and_ours_with_seed_statistics() {
        let md = markdown(&[row("mnist", 0.0, "radius", 0, 0.98), row("mnist", 0.0, "radius", 1, 0.96), row("mnist", 0.5, "radius", 0, 0.97)], "");
        assert!(md.contains("| baseline Deep SVDD | 0.9814 / 0.9825 | 0.9700±0.0141 / 0.9000±0.0000 / 0.5000±0.0000 (2) |"), "{md}");
        assert!(md.contains("| hybrid mu1=1, mu2=0.5 | 0.9754 / 0.9820 | 0.9700 / 0.9000 / 0.5000 (1) |"), "{md}");
        assert!(md.contains("| adaptive (Mahalanobis) | 0.9848 / 0.9858 | not run |"), "{md}");
    }

    #[test]
    fn a_run_with_another_mu1_is_not_filed_under_the_published_rows() {
        let mut other = row("mnist", 0.5, "radius", 0, 0.91);
        other.mu1 = Some(2.0);
        let mut unknown = row("mnist", 0.5, "radius", 1, 0.92);
        unknown.mu1 = None;
        let md = markdown(&[row("mnist", 0.5, "radius", 0, 0.97), other, unknown], "");
        assert!(md.contains("| hybrid mu1=1, mu2=0.5 | 0.9754 / 0.9820 | 0.9700 / 0.9000 / 0.5000 (1) |"), "{md}");
        assert!(md.contains("| hybrid mu1=2, mu2=0.5 | - | 0.9100 / 0.9000 / 0.5000 (1) |"), "{md}");
        assert!(md.contains("| hybrid mu2=0.5 (mu1 not recorded) | - | 0.9200 / 0.9000 / 0.5000 (1) |"), "{md}");
        let mut base2 = row("mnist", 0.0, "radius", 0, 0.95);
        base2.mu1 = Some(0.5);
        assert!(markdown(&[base2], "").contains("| baseline Deep SVDD, mu1=0.5 | - | 0.9500 / 0.9000 / 0.5000 (1) |"));
    }

    #[test]
    fn loss_weights_are_recovered_from_the_history() {
        // float32 terms: loss = f32(mu1 * svdd) + f32(mu2 * rec).
        let svdd = [3.1f64, 1.2, 0.7, 0.41, 0.3];
        let rec = [12.4f64, 12.1, 11.9, 11.7, 11.65];
        let loss: Vec<f64> = svdd.iter().zip(&rec).map(|(s, r)| ((2.0 * s) as f32 + (0.1 * r) as f32) as f64).collect();
        assert_eq!(loss_weights(&loss, &svdd, &rec), Some((2.0, 0.1)));
        let base: Vec<f64> = svdd.iter().map(|s| (*s as f32) as f64).collect();
        assert_eq!(loss_weights(&base, &svdd, &[f64::NAN; 5]), Some((1.0, 0.0)));
        assert_eq!(loss_weights(&[], &[], &[]), None);
    }

    #[test]
    fn loss_terms_show_the_weighted_share() {
        let t = |mu2: f64, s: f64, r: f64| LossTerms { dataset: "mnist".into(), mu2, first: (1.0, 50.0), last: (s, r) };
        let md = loss_terms(&[t(0.0, 0.05, 30.0), t(0.5, 0.08, 10.0), t(0.5, 0.12, 14.0)]);
        // mu2 0.5: last SVDD 0.10, reconstruction 12.0 -> 6 / 6.1 = 0.984.
        assert!(md.contains("| MNIST | 0.5 | 1.0000 / 0.1000 | 50.00 / 12.00 | 0.984 |"), "{md}");
        assert!(loss_terms(&[t(0.0, 0.05, 30.0)]).is_empty());
    }

    #[test]
    fn verdicts_compare_one_factor_at_a_time_and_survive_holm() {
        // Values and p from scipy 1.17 (ttest_rel; wilcoxon(method="approx"): the |differences|
        // hold ties, so the normal approximation with tie correction, as `pipe compare` documents;
        // without ties, the exact distribution) and statsmodels (multipletests, method="holm").
        let base_r = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95];
        let hyb_r = [0.92, 0.925, 0.94, 0.948, 0.961, 0.969];
        let base_m = [0.905, 0.908, 0.927, 0.929, 0.946, 0.951];
        let hyb_m = [0.909, 0.906, 0.935, 0.931, 0.952, 0.956];
        let mut rows = Vec::new();
        for (mu2, method, aucs) in [(0.0, "radius", base_r), (0.5, "radius", hyb_r), (0.0, "mahalanobis", base_m), (0.5, "mahalanobis", hyb_m)] {
            for (seed, auc) in aucs.into_iter().enumerate() {
                rows.push(row("mnist", mu2, method, seed as i64, auc));
            }
        }
        let md = markdown(&rows, "");
        // The hybrid under Mahalanobis is compared with the Mahalanobis baseline, not the radius
        // one; its raw p = 0.0432 (its interval excludes 0) is 0.0864 after Holm: no verdict.
        assert!(
            md.contains("| MNIST | hybrid mu2=0.5 + mahalanobis | adaptive (Mahalanobis) | +0.0038 | [+0.0002, +0.0075] | 0.0432 | 0.0585 | 0.0864 | no difference shown | 6 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| adaptive (Mahalanobis) | baseline Deep SVDD | +0.0027 | [-0.0014, +0.0067] | 0.1488 | 0.2072 | 0.1488 | no difference shown | 6 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| hybrid mu1=1, mu2=0.5 | baseline Deep SVDD | +0.0188 | [+0.0166, +0.0211] | < 0.0001 | 0.0312 | < 0.0001 | better | 6 |"),
            "{md}"
        );
        assert!(md.contains("1 of 3 tested comparisons differ after Holm's correction"), "{md}");
    }

    #[test]
    fn paired_difference_uses_the_t_interval_over_seeds() {
        // Differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t(0.975, 2) = 4.303 -> +-0.0248.
        let rows = [
            row("mnist", 0.0, "radius", 0, 0.90),
            row("mnist", 0.0, "radius", 1, 0.91),
            row("mnist", 0.0, "radius", 2, 0.92),
            row("mnist", 0.5, "radius", 0, 0.91),
            row("mnist", 0.5, "radius", 1, 0.93),
            row("mnist", 0.5, "radius", 2, 0.95),
        ];
        let md = markdown(&rows, "");
        // t = 0.02 / (0.01 / sqrt 3) = 3.4641, p = 0.0742 (scipy.stats.ttest_rel); one test, Holm = p.
        assert!(
            md.contains("| MNIST | hybrid mu1=1, mu2=0.5 | baseline Deep SVDD | +0.0200 | [-0.0048, +0.0448] | 0.0742 | - | 0.0742 | no difference shown | 3 |"),
            "{md}"
        );
        assert!(md.contains("0 of 1 tested comparisons differ after Holm's correction"), "{md}");
    }

    #[test]
    fn all_classes_are_tabled_beside_ruff_and_compared_one_pair_per_class() {
        // 7 classes, 2 seeds: baseline AUC 0.90 + 0.01c and 0.92 + 0.01c; the adaptive threshold
        // adds d_c to both seeds. Across classes: differences d (mean 0.005857), scipy 1.17
        // ttest_rel p = 0.01655, interval [0.00151, 0.01021]; wilcoxon (exact, no ties) p = 0.03125.
        let d = [0.010, 0.004, 0.006, -0.002, 0.008, 0.012, 0.003];
        let mut rows = Vec::new();
        for (c, dc) in d.iter().enumerate() {
            for seed in 0..2 {
                let base = 0.90 + 0.02 * seed as f64 + 0.01 * c as f64;
                for (method, auc) in [("radius", base), ("mahalanobis", base + dc)] {
                    rows.push(ResultRow { normal_class: c as i64, ..row("mnist", 0.0, method, seed, auc) });
                }
            }
        }
        let md = markdown(&rows, "");
        let ruff = ruff_table1("mnist").unwrap()[3];
        // Class 3: baseline 0.93, 0.95 -> 94.0 ± 1.4; adaptive 0.928, 0.948 -> 93.8 ± 1.4.
        let line = format!("| MNIST | 3 | {:.1}±{:.1} | 94.0±1.4 (2) | 93.8±1.4 (2) |", ruff.0, ruff.1);
        assert!(md.contains("| dataset | class | Ruff et al. | baseline Deep SVDD | adaptive (Mahalanobis) |\n|---|---|---|---|---|\n"), "{md}");
        assert!(md.contains(&line), "{line} in {md}");
        // The verdict is the Wilcoxon test's (Demšar 2006), Holm over one comparison.
        let verdict =
            "| MNIST | adaptive (Mahalanobis) | baseline Deep SVDD | +0.0059 | [+0.0015, +0.0102] | 0.0165 | 0.0312 | 0.0312 | better | 7 |";
        assert!(md.contains(verdict), "{md}");
        assert!(md.contains("## Across classes, one factor at a time"), "{md}");
        // A seed the variant lacks in one class is left out of that class's pair on both sides:
        // class 6 still differs by d_6 = 0.003 (each side averaged over its own seeds: -0.007).
        let lacking: Vec<ResultRow> = rows.iter().filter(|r| !(r.normal_class == 6 && r.seed == 1 && r.method == "mahalanobis")).cloned().collect();
        let md = markdown(&lacking, "");
        assert!(md.contains(verdict), "{md}");
        let ruff6 = ruff_table1("mnist").unwrap()[6];
        assert!(md.contains(&format!("| MNIST | 6 | {:.1}±{:.1} | 97.0±1.4 (2) | 96.3 (1) |", ruff6.0, ruff6.1)), "{md}");
        assert!(md.contains("In 1 (comparison, class) pairs one side lacks a seed the other has"), "{md}");
        // Class 0 alone is no all-classes run.
        assert!(!markdown(&rows[..4], "").contains("## All classes"));
    }
}
