//! `pipe compare`: every cell of a results table against a baseline cell, paired over seeds. The
//! table's values are chosen here; every number the command prints is checked against scipy.
//!
//! Reference values: Python 3.11, numpy, scipy 1.17.1, statsmodels 0.15.0, on the same values
//! (the `fashion` AUCs are multiples of 1/256, so their differences tie exactly):
//!
//! ```python
//! import numpy as np
//! from scipy import stats
//! from statsmodels.stats.multitest import multipletests
//! mb = [0.960, 0.965, 0.970, 0.955, 0.962, 0.968]            # mnist radius mu2=0 (baseline)
//! mm = [0.981, 0.990, 0.988, 0.977, 0.992, 0.989]            # mnist mahalanobis mu2=0
//! mr = [0.970, 0.961, 0.982, 0.963, 0.977, 0.970]            # mnist radius mu2=0.5
//! fb = [x / 256 for x in [232, 234, 230, 233, 231, 229]]      # fashion radius mu2=0 (baseline)
//! fm = [x / 256 for x in [235, 237, 229, 238, 233, 230]]      # fashion mahalanobis mu2=0
//! fr = [0.887, 0.893, 0.880, 0.884, 0.879]                    # fashion radius mu2=0.5, seeds 0-4 only
//! np.mean(v), np.std(v, ddof=1)                               # per cell
//! r = stats.ttest_rel(x, y); r.pvalue; r.statistic; r.confidence_interval(0.95)   # x cell, y baseline (seeds 0-4 for fr)
//! stats.wilcoxon(mm, mb, method="asymptotic")   # ties (two differences of 0.021): statistic 0.0, p 0.027281171477617997
//! stats.wilcoxon(mr, mb, method="exact")        # statistic 2.0, p 0.09375
//! stats.wilcoxon(fm, fb, method="asymptotic")   # ties: statistic 1.5, p 0.057779571123597245
//! multipletests([p_mm, p_mr, p_fm, p_fr], method="holm")[1]   # one family
//! multipletests([p_mm, p_mr], method="holm")[1]; multipletests([p_fm, p_fr], method="holm")[1]   # --within dataset
//! ```

mod common;
use common::Workspace;
use polars::prelude::*;

const SEEDS: usize = 6;

/// (dataset, method, mu2, AUC per seed; None: no row).
fn cells() -> Vec<(&'static str, &'static str, f64, Vec<Option<f64>>)> {
    let all = |v: [f64; 6]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
    let f = |v: [u32; 6]| v.iter().map(|x| Some(*x as f64 / 256.0)).collect::<Vec<_>>();
    vec![
        ("mnist", "radius", 0.0, all([0.960, 0.965, 0.970, 0.955, 0.962, 0.968])),
        ("mnist", "mahalanobis", 0.0, all([0.981, 0.990, 0.988, 0.977, 0.992, 0.989])),
        ("mnist", "radius", 0.5, all([0.970, 0.961, 0.982, 0.963, 0.977, 0.970])),
        ("fashion", "radius", 0.0, f([232, 234, 230, 233, 231, 229])),
        ("fashion", "mahalanobis", 0.0, f([235, 237, 229, 238, 233, 230])),
        ("fashion", "radius", 0.5, vec![Some(0.887), Some(0.893), Some(0.880), Some(0.884), Some(0.879), None]),
    ]
}

/// The results table as `concat` writes it (a `node` column naming the grid coordinates, mu2 a
/// float axis, an integer `normal_class`, a second metric `f1`), rows seed by seed.
fn table(with_node: bool) -> DataFrame {
    let (mut node, mut dataset, mut method, mut mu2, mut class, mut seed, mut auc, mut f1) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in 0..SEEDS {
        for (i, (d, m, mu, v)) in cells().into_iter().enumerate() {
            let Some(x) = v[s] else { continue };
            node.push(format!("evaluate[dataset={d},normal_class=0,seed={s},mu2={mu:.1},method={m}]"));
            dataset.push(d);
            method.push(m);
            mu2.push(mu);
            class.push(0i64);
            seed.push(s as i64);
            auc.push(x);
            f1.push(0.5 + (i * SEEDS + s) as f64 / 100.0);
        }
    }
    let mut df = df!("node" => node, "dataset" => dataset, "method" => method, "mu2" => mu2, "normal_class" => class, "seed" => seed, "auc" => auc, "f1" => f1)
        .unwrap();
    if !with_node {
        df = df.drop("node").unwrap();
    }
    df
}

fn workspace(name: &str) -> Workspace {
    let ws = Workspace::new(name);
    for (file, with_node) in [("results.parquet", true), ("bare.parquet", false)] {
        let mut df = table(with_node);
        ParquetWriter::new(std::fs::File::create(ws.dir.join(file)).unwrap()).finish(&mut df).unwrap();
    }
    ws
}

fn close(got: &serde_json::Value, want: f64, what: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!((g - want).abs() <= 1e-6 * want.abs(), "{what}: {g} != {want} (scipy)");
}

fn json(ws: &Workspace, args: &[&str]) -> Vec<serde_json::Value> {
    let out = ws.pipe(args);
    assert!(out.status.success(), "pipe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// What scipy says of one comparison.
struct Want {
    cell: (&'static str, &'static str, f64),
    mean: f64,
    std: f64,
    n: u64,
    pairs: u64,
    diff: f64,
    t: f64,
    p_t: f64,
    ci: (f64, f64),
    /// (statistic, p, method)
    wilcoxon: Option<(f64, f64, &'static str)>,
}

fn wants() -> [Want; 4] {
    [
        Want {
            cell: ("mnist", "mahalanobis", 0.0),
            mean: 0.9861666666666666,
            std: 0.005845225972250066,
            n: 6,
            pairs: 6,
            diff: 0.022833333333333355,
            t: 13.421056593158955,
            p_t: 4.1103453748029644e-05,
            ci: (0.018459985265967767, 0.027206681400698943),
            wilcoxon: Some((0.0, 0.027281171477617997, "normal")),
        },
        Want {
            cell: ("mnist", "radius", 0.5),
            mean: 0.9705,
            std: 0.008018728078691788,
            n: 6,
            pairs: 6,
            diff: 0.007166666666666673,
            t: 2.5086643594985176,
            p_t: 0.0539159208619692,
            ci: (-0.0001768837312336128, 0.014510217064566958),
            wilcoxon: Some((2.0, 0.09375, "exact")),
        },
        Want {
            cell: ("fashion", "mahalanobis", 0.0),
            mean: 0.9127604166666666,
            std: 0.014334748900544671,
            n: 6,
            pairs: 6,
            diff: 0.008463541666666666,
            t: 2.6,
            p_t: 0.048249453069580076,
            ci: (9.576225378803843e-05, 0.016831321079545294),
            wilcoxon: Some((1.5, 0.057779571123597245, "normal")),
        },
        Want {
            cell: ("fashion", "radius", 0.5),
            mean: 0.8846,
            std: 0.005683308895353133,
            n: 5,
            pairs: 5,
            diff: -0.021649999999999992,
            t: -15.385909145153887,
            p_t: 0.00010411803660979851,
            ci: (-0.025556823832146768, -0.017743176167853217),
            wilcoxon: None,
        },
    ]
}

/// Baselines: (dataset, mean, std) over seeds 0-5.
const BASELINES: [(&str, f64, f64); 2] = [("mnist", 0.9633333333333333, 0.005501514942874074), ("fashion", 0.904296875, 0.007307924583542854)];

fn check(rows: &[serde_json::Value], holm: [f64; 4], verdicts: [&str; 4], family: [&str; 4], family_size: u64) {
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for (i, (r, w)) in rows.iter().zip(wants()).enumerate() {
        let at = format!("comparison {i} ({:?})", w.cell);
        assert_eq!(r["cell"], serde_json::json!({"dataset": w.cell.0, "method": w.cell.1, "mu2": w.cell.2, "normal_class": 0}), "{at}");
        assert_eq!(r["baseline"], serde_json::json!({"dataset": w.cell.0, "method": "radius", "mu2": 0.0, "normal_class": 0}), "{at}");
        let (_, bmean, bstd) = BASELINES.iter().find(|b| b.0 == w.cell.0).unwrap();
        close(&r["baseline_mean"], *bmean, &at);
        close(&r["baseline_std"], *bstd, &at);
        assert_eq!(r["baseline_n"], 6, "{at}");
        close(&r["mean"], w.mean, &at);
        close(&r["std"], w.std, &at);
        assert_eq!(r["n"], w.n, "{at}");
        assert_eq!(r["pairs"], w.pairs, "{at}");
        assert_eq!(r["df"], w.pairs - 1, "{at}");
        close(&r["diff_mean"], w.diff, &format!("{at} diff"));
        close(&r["t"], w.t, &format!("{at} t"));
        close(&r["p_t"], w.p_t, &format!("{at} p_t"));
        close(&r["ci_low"], w.ci.0, &format!("{at} ci_low"));
        close(&r["ci_high"], w.ci.1, &format!("{at} ci_high"));
        match w.wilcoxon {
            Some((stat, p, method)) => {
                close(&r["wilcoxon_statistic"], stat, &format!("{at} W"));
                close(&r["p_wilcoxon"], p, &format!("{at} p_wilcoxon"));
                assert_eq!(r["wilcoxon_method"], method, "{at}");
            }
            None => assert!(r["p_wilcoxon"].is_null() && r["wilcoxon_method"].is_null(), "{at}: fewer than 6 pairs: {r}"),
        }
        close(&r["p_holm"], holm[i], &format!("{at} p_holm"));
        assert_eq!(r["verdict"], verdicts[i], "{at}");
        assert_eq!(r["holm_family"], family[i], "{at}");
        assert_eq!(r["holm_family_size"], family_size, "{at}");
    }
    // Seed 5 of fashion radius mu2=0.5 is missing: dropped from that pair, and said so.
    assert_eq!(rows[3]["dropped"], serde_json::json!([5]));
    assert!(rows[..3].iter().all(|r| r["dropped"] == serde_json::json!([])));
}

/// One Holm family over the 4 comparisons. fashion mahalanobis has p = 0.048 < 0.05 uncorrected,
/// but 0.0965 after Holm: no difference shown.
#[test]
fn every_number_matches_scipy_with_one_holm_family() {
    let ws = workspace("compare-all");
    let rows = json(&ws, &["compare", "results.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0", "--json"]);
    check(
        &rows,
        [0.00016441381499211858, 0.09649890613916015, 0.09649890613916015, 0.0003123541098293955],
        ["better", "no difference shown", "no difference shown", "worse"],
        ["all"; 4],
        4,
    );
    assert!(rows[2]["p_t"].as_f64().unwrap() < 0.05 && rows[2]["p_holm"].as_f64().unwrap() >= 0.05);
    // Without a `node` column a float axis is a coordinate where --baseline names it: the same.
    let bare = json(&ws, &["compare", "bare.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0.0", "--replicate", "seed", "--json"]);
    assert_eq!(bare, rows);
    // --lower-is-better flips the direction of the verdict, nothing else.
    let low = json(&ws, &["compare", "results.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0", "--json", "--lower-is-better"]);
    assert_eq!(low[0]["verdict"], "worse");
    assert_eq!(low[3]["verdict"], "better");
    assert_eq!(low[0]["p_holm"], rows[0]["p_holm"]);
}

/// `--within dataset`: one Holm family per dataset, so fashion mahalanobis (p = 0.048, family of
/// 2 with p = 0.0001) is better.
#[test]
fn within_makes_one_holm_family_per_value() {
    let ws = workspace("compare-within");
    let rows = json(&ws, &["compare", "results.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0", "--within", "dataset", "--json"]);
    check(
        &rows,
        [8.220690749605929e-05, 0.0539159208619692, 0.048249453069580076, 0.00020823607321959701],
        ["better", "no difference shown", "better", "worse"],
        ["dataset=mnist", "dataset=mnist", "dataset=fashion", "dataset=fashion"],
        2,
    );
}

/// The default output: an aligned table, baseline first in each group, the dropped seed noted.
#[test]
fn the_table_shows_each_group_under_its_baseline() {
    let ws = workspace("compare-table");
    let out = ws.pipe(&["compare", "results.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("auc: each cell minus its baseline (method=radius,mu2=0, same other coordinates), paired on seed"), "{text}");
    assert!(lines[0].contains("over all 4 comparisons"), "{text}");
    let header: Vec<&str> = lines[1].split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(
        header,
        [
            "dataset",
            "method",
            "mu2",
            "normal_class",
            "n",
            "mean",
            "std",
            "pairs",
            "diff",
            "95% CI of diff",
            "p (t)",
            "p (Wilcoxon)",
            "p (Holm)",
            "verdict"
        ],
        "{text}"
    );
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>().join(" ");
    assert_eq!(words(lines[2]), "mnist radius 0.0 0 6 0.9633 0.0055 baseline", "{text}");
    assert_eq!(
        words(lines[3]),
        "mnist mahalanobis 0.0 0 6 0.9862 0.0058 6 +0.0228 [+0.0185, +0.0272] 4.11e-5 0.0273 (normal) 1.64e-4 better",
        "{text}"
    );
    assert_eq!(
        words(lines[4]),
        "mnist radius 0.5 0 6 0.9705 0.0080 6 +0.0072 [-1.77e-4, +0.0145] 0.0539 0.0938 (exact) 0.0965 no difference shown",
        "{text}"
    );
    assert_eq!(words(lines[5]), "fashion radius 0.0 0 6 0.9043 0.0073 baseline", "{text}");
    assert_eq!(
        words(lines[6]),
        "fashion mahalanobis 0.0 0 6 0.9128 0.0143 6 +0.0085 [+9.58e-5, +0.0168] 0.0482 0.0578 (normal) 0.0965 no difference shown",
        "{text}"
    );
    assert_eq!(
        words(lines[7]),
        "fashion radius 0.5 0 5 0.8846 0.0057 5 (1 dropped) -0.0216 [-0.0256, -0.0177] 1.04e-4 - (n < 6) 3.12e-4 worse",
        "{text}"
    );
    assert!(lines[8].contains("dataset=fashion method=radius mu2=0.5 normal_class=0: seed 5 dropped"), "{text}");
    // Columns line up: every row's verdict column starts where the header's does.
    let at = lines[1].find("verdict").unwrap();
    for l in &lines[3..8] {
        if !l.ends_with("baseline") {
            assert!(l[at..].starts_with("better") || l[at..].starts_with("no difference") || l[at..].starts_with("worse"), "{l}");
        }
    }
}

fn fails(ws: &Workspace, args: &[&str], code: i32, says: &[&str]) {
    let out = ws.pipe(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "pipe {args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "pipe {args:?} should say {s:?}: {err}");
    }
    assert!(err.contains("hint: "), "{err}");
}

/// Each error names the column or value and says what to do: 7 for what the table lacks, 2 for
/// arguments that cannot mean anything.
#[test]
fn errors_name_the_column_or_value() {
    let ws = workspace("compare-errors");
    let base = ["compare", "results.parquet", "--metric", "auc", "--baseline", "method=radius,mu2=0"];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v: Vec<&str> = base.to_vec();
        for pair in extra.chunks(2) {
            match v.iter().position(|a| *a == pair[0]) {
                Some(i) => v[i + 1] = pair[1],
                None => v.extend(pair),
            }
        }
        v
    };
    fails(&ws, &with(&["--metric", "aucc"]), 7, &["no column `aucc`", "auc, f1"]);
    fails(&ws, &with(&["--metric", "mu2"]), 2, &["`mu2` is not a metric", "auc, f1"]);
    fails(&ws, &with(&["--metric", "normal_class"]), 2, &["`normal_class` is not a metric", "not a float column"]);
    fails(&ws, &with(&["--baseline", "method=svdd"]), 7, &["method=svdd", "radius, mahalanobis"]);
    fails(&ws, &with(&["--baseline", "method=mahalanobis,mu2=0.5"]), 7, &["no cell holds all of these values together"]);
    fails(&ws, &with(&["--baseline", "model=radius"]), 7, &["no column `model`", "dataset, method, mu2, normal_class"]);
    fails(&ws, &with(&["--baseline", "mu2=zero"]), 2, &["`mu2` is a numeric column"]);
    fails(&ws, &with(&["--baseline", "radius"]), 2, &["expected COLUMN=VALUE"]);
    fails(&ws, &with(&["--baseline", "seed=0"]), 2, &["`seed` cannot be a --baseline column", "replicate column"]);
    fails(&ws, &with(&["--replicate", "run"]), 7, &["no replicate column `run`", "--replicate COLUMN"]);
    fails(&ws, &with(&["--within", "method"]), 2, &["--within", "--baseline names it"]);
    fails(&ws, &["compare", "missing.parquet", "--metric", "auc", "--baseline", "method=radius"], 7, &["missing.parquet"]);

    // Fewer than 2 paired seeds: named, with the seeds each side has.
    let mut df = df!("method" => ["a", "a", "b", "b"], "seed" => [0i64, 1, 1, 2], "auc" => [0.9, 0.8, 0.7, 0.6]).unwrap();
    ParquetWriter::new(std::fs::File::create(ws.dir.join("few.parquet")).unwrap()).finish(&mut df).unwrap();
    fails(
        &ws,
        &["compare", "few.parquet", "--metric", "auc", "--baseline", "method=a"],
        7,
        &["method=b and its baseline method=a share 1 seed value(s)", "seed: 1, 2 in the cell, 0, 1 in the baseline", "at least 2"],
    );
    // Two rows of one cell with one seed: a column that tells them apart is missing.
    let mut df = df!("method" => ["a", "a", "b", "b"], "seed" => [0i64, 0, 0, 1], "auc" => [0.9, 0.8, 0.7, 0.6]).unwrap();
    ParquetWriter::new(std::fs::File::create(ws.dir.join("dup.parquet")).unwrap()).finish(&mut df).unwrap();
    fails(&ws, &["compare", "dup.parquet", "--metric", "auc", "--baseline", "method=a"], 2, &["cell method=a has 2 rows with seed=0"]);
}

/// A group without a baseline cell (here `cifar10` has no `radius` run) is named, not compared,
/// and stays out of the Holm family; a table of baseline cells only has nothing to compare.
#[test]
fn cells_without_a_baseline_are_named_not_compared() {
    let ws = Workspace::new("compare-unmatched");
    let mut df = df!(
        "dataset" => ["mnist", "mnist", "mnist", "mnist", "cifar10", "cifar10"],
        "method" => ["radius", "radius", "mahalanobis", "mahalanobis", "mahalanobis", "mahalanobis"],
        "seed" => [0i64, 1, 0, 1, 0, 1],
        "auc" => [0.90, 0.92, 0.95, 0.96, 0.70, 0.72],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(ws.dir.join("t.parquet")).unwrap()).finish(&mut df).unwrap();
    let args = ["compare", "t.parquet", "--metric", "auc", "--baseline", "method=radius"];
    let out = ws.pipe(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("note: dataset=cifar10 method=mahalanobis: no baseline cell holds its other coordinates; not compared"), "{text}");
    assert!(text.contains("over all 1 comparison;"), "{text}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = ws.pipe(&json_args);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["holm_family_size"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset=cifar10 method=mahalanobis: no baseline cell"));
    // scipy: stats.ttest_rel([0.95, 0.96], [0.90, 0.92]).pvalue
    close(&rows[0]["p_t"], 0.07044657495455472, "p_t");
    let mut df = df!("method" => ["radius", "radius"], "seed" => [0i64, 1], "auc" => [0.9, 0.8]).unwrap();
    ParquetWriter::new(std::fs::File::create(ws.dir.join("one.parquet")).unwrap()).finish(&mut df).unwrap();
    fails(&ws, &["compare", "one.parquet", "--metric", "auc", "--baseline", "method=radius"], 2, &["every cell is a baseline cell"]);
}
