//! `fit_threshold` never reads test labels or test scores: shuffling the test rows' labels (and
//! scores) leaves the fitted threshold byte-identical.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pipe::stage::{NoProgress, Params, RunContext, StageKind};
use pipe::Value;
use polars::prelude::*;

fn scores_table(path: &std::path::Path, test_labels: &[i64], test_scores: &[f64]) {
    let mut rng = stages::rng::Rng::new(9);
    let n_train = 200;
    let n = n_train + test_labels.len();
    let mut split = vec!["train"; n_train];
    split.extend(vec!["test"; test_labels.len()]);
    let mut label = vec![0i64; n_train];
    label.extend_from_slice(test_labels);
    let mut score: Vec<f64> = (0..n_train).map(|_| rng.uniform()).collect();
    score.extend_from_slice(test_scores);
    let mut cols = vec![
        Column::new("split".into(), split),
        Column::new("index".into(), (0..n as i64).collect::<Vec<_>>()),
        Column::new("label".into(), label),
        Column::new("class".into(), vec![0i64; n]),
        Column::new("score".into(), score),
    ];
    for j in 0..4 {
        // Train codes are seeded draws; test codes are the test scores (so shuffling moves them too).
        let mut z: Vec<f32> = (0..n_train).map(|_| rng.uniform() as f32).collect();
        z.extend(test_scores.iter().map(|s| (*s as f32) * (j + 1) as f32));
        cols.push(Column::new(format!("z{j}").into(), z));
    }
    let mut df = DataFrame::new(cols).unwrap();
    stages::table::write_parquet(&mut df, path).unwrap();
}

/// Runs `fit_threshold` (defaults, then `param = value`) on the score table `scores`; the fitted threshold.
fn try_fit(param: &str, value: &str, scores: &std::path::Path, out: &std::path::Path) -> Result<f64, pipe::stage::StageError> {
    std::fs::create_dir_all(out).unwrap();
    let kind = pipe_kinds::fit_threshold::FitThreshold;
    let mut params: BTreeMap<String, Value> = kind.params().into_iter().filter_map(|p| p.default.map(|d| (p.name.to_string(), d))).collect();
    params.insert(param.into(), Value::Str(value.into()));
    let ctx = RunContext::new(
        "threshold".into(),
        Params(params),
        BTreeMap::from([("scores".to_string(), vec![scores.to_path_buf()])]),
        BTreeMap::new(),
        BTreeMap::new(),
        kind.outputs(&Params::default()).unwrap(),
        out.to_path_buf(),
        out.to_path_buf(),
        1,
        Arc::new(NoProgress),
        Arc::new(AtomicBool::new(false)),
    );
    kind.run(&ctx)?;
    let df = stages::table::read_parquet(&out.join("threshold.parquet")).unwrap();
    Ok(df.column("threshold").unwrap().f64().unwrap().get(0).unwrap())
}

fn fit(method: &str, scores: &std::path::Path, out: &std::path::Path) -> f64 {
    try_fit("method", method, scores, out).unwrap()
}

#[test]
fn shuffled_test_labels_give_the_same_threshold() {
    let dir = std::env::temp_dir().join(format!("pipe-thr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let labels: Vec<i64> = (0..100).map(|i| i64::from(i % 3 != 0)).collect();
    let scores: Vec<f64> = (0..100).map(|i| i as f64 / 10.0).collect();
    let perm = stages::rng::Rng::new(4).permutation(100);
    let shuffled_labels: Vec<i64> = perm.iter().map(|&i| labels[i as usize]).collect();
    let shuffled_scores: Vec<f64> = stages::rng::Rng::new(5).permutation(100).iter().map(|&i| scores[i as usize] * 3.0).collect();
    scores_table(&dir.join("a.parquet"), &labels, &scores);
    scores_table(&dir.join("b.parquet"), &shuffled_labels, &shuffled_scores);
    for method in ["radius", "gaussian", "mahalanobis"] {
        let a = fit(method, &dir.join("a.parquet"), &dir.join(format!("out-a-{method}")));
        let b = fit(method, &dir.join("b.parquet"), &dir.join(format!("out-b-{method}")));
        assert!(a.is_finite());
        assert_eq!(a.to_bits(), b.to_bits(), "{method}: the threshold depends only on training rows");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A score table of `n` rows (train / holdout / test) whose scores are `distance - r2`.
fn boundary_table(path: &std::path::Path, r2: f64) {
    let n = 60;
    let split: Vec<&str> = (0..n)
        .map(|i| {
            if i < 30 {
                "train"
            } else if i < 40 {
                "holdout"
            } else {
                "test"
            }
        })
        .collect();
    let distance: Vec<f64> = (0..n).map(|i| 0.01 * i as f64).collect();
    let mut df = DataFrame::new(vec![
        Column::new("split".into(), split),
        Column::new("index".into(), (0..n as i64).collect::<Vec<_>>()),
        Column::new("label".into(), (0..n).map(|i| i64::from(i >= 50)).collect::<Vec<_>>()),
        Column::new("class".into(), vec![0i64; n]),
        Column::new("distance".into(), distance.clone()),
        Column::new("score".into(), distance.iter().map(|d| d - r2).collect::<Vec<_>>()),
        Column::new("z0".into(), distance.iter().map(|d| *d as f32).collect::<Vec<_>>()),
    ])
    .unwrap();
    stages::table::write_parquet(&mut df, path).unwrap();
}

#[test]
fn boundary_cutoff_needs_a_soft_boundary_model() {
    let dir = std::env::temp_dir().join(format!("pipe-boundary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |table: &std::path::Path, out: &std::path::Path| try_fit("cutoff", "boundary", table, out);
    // One-class scores (score = distance): an error naming the fix, not a 0 threshold that flags all.
    boundary_table(&dir.join("one.parquet"), 0.0);
    let err = run(&dir.join("one.parquet"), &dir.join("out-one")).unwrap_err().to_string();
    assert!(err.contains("needs a soft-boundary model") && err.contains("objective: soft-boundary"), "{err}");
    // Soft-boundary scores (distance - R^2): the boundary is score 0.
    boundary_table(&dir.join("soft.parquet"), 0.2);
    assert_eq!(run(&dir.join("soft.parquet"), &dir.join("out-soft")).unwrap(), 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}
