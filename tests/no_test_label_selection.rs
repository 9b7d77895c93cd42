//! Nothing shown is chosen by looking at test labels: the ROC figure shows the DECLARED hybrid
//! (`plot.hybrid_mu2`, default the published study's choice). Swapping the test AUCs of two
//! hybrids swaps nothing in which hybrid the figure shows; the report lists every hybrid.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pipe::stage::{NoProgress, Params, RunContext, StageKind};
use pipe::Value;
use polars::prelude::*;

/// (mu2, method, test AUC) of each evaluated model.
fn plot_svg(dir: &std::path::Path, models: &[(f64, &str, f64)], hybrid_mu2: Option<f64>) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let (mut metrics, mut rocs, mut nodes, mut coords) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (mu2, method, auc)) in models.iter().enumerate() {
        let m = dir.join(format!("m{i}.parquet"));
        let mut df = df!("method" => [*method], "auc" => [*auc]).unwrap();
        stages::table::write_parquet(&mut df, &m).unwrap();
        let r = dir.join(format!("r{i}.parquet"));
        let mut roc = df!("fpr" => [0.0, 0.1, 1.0], "tpr" => [0.0, *auc, 1.0]).unwrap();
        stages::table::write_parquet(&mut roc, &r).unwrap();
        metrics.push(m);
        rocs.push(r);
        nodes.push(format!("evaluate[mu2={mu2:?},method={method}]"));
        coords.push(BTreeMap::from([
            ("dataset".to_string(), Value::Str("mnist".into())),
            ("mu2".to_string(), Value::Float(*mu2)),
            ("method".to_string(), Value::Str(method.to_string())),
        ]));
    }
    let kind = pipe_kinds::plot::Plot;
    let mut params = BTreeMap::from([("dataset".to_string(), Value::Str("mnist".into()))]);
    if let Some(m) = hybrid_mu2 {
        params.insert("hybrid_mu2".into(), Value::Float(m));
    }
    let params = Params(params);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let ctx = RunContext::new(
        "plot[dataset=mnist]".into(),
        params.clone(),
        BTreeMap::from([
            ("metrics".to_string(), metrics),
            ("roc".to_string(), rocs),
            ("embedding".to_string(), vec![]),
            ("gradcam".to_string(), vec![]),
        ]),
        BTreeMap::from([("metrics".to_string(), nodes.clone()), ("roc".to_string(), nodes)]),
        BTreeMap::from([("metrics".to_string(), coords.clone()), ("roc".to_string(), coords)]),
        kind.outputs(&params).unwrap(),
        out.clone(),
        out.clone(),
        1,
        Arc::new(NoProgress),
        Arc::new(AtomicBool::new(false)),
    );
    kind.run(&ctx).unwrap();
    std::fs::read_to_string(out.join("MNIST_ROC_Curve.svg")).unwrap()
}

#[test]
fn swapping_two_hybrids_test_aucs_does_not_change_the_hybrid_shown() {
    let dir = std::env::temp_dir().join(format!("pipe-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let models = |a: f64, b: f64| vec![(0.0, "radius", 0.97), (0.0, "mahalanobis", 0.98), (1.0, "radius", a), (2.0, "radius", b)];
    // MNIST's declared hybrid (the published study's) is mu2 = 1.0, whichever scores higher.
    for (i, (a, b)) in [(0.90, 0.99), (0.99, 0.90)].into_iter().enumerate() {
        let svg = plot_svg(&dir.join(format!("default{i}")), &models(a, b), None);
        assert!(svg.contains(&format!("hybrid mu2=1 (declared; AUC {a:.4})")), "{i}: the declared mu2 = 1.0 hybrid is shown");
        assert!(!svg.contains("hybrid mu2=2"), "{i}: the other hybrid is not shown");
    }
    // Declared explicitly: mu2 = 2.0, again whichever scores higher.
    for (i, (a, b)) in [(0.90, 0.99), (0.99, 0.90)].into_iter().enumerate() {
        let svg = plot_svg(&dir.join(format!("declared{i}")), &models(a, b), Some(2.0));
        assert!(svg.contains(&format!("hybrid mu2=2 (declared; AUC {b:.4})")) && !svg.contains("hybrid mu2=1 "), "{i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
