//! The user's main job end to end on the bundled data: run quick.yaml, change mu2 of one variant,
//! rerun; assert exactly which nodes re-ran and that the plots and report changed accordingly.

mod common;
use common::Workspace;

fn read_svg(ws: &Workspace) -> Vec<u8> {
    std::fs::read(ws.dir.join("Deliverables/quick/Plots/Comparative/MNIST_ROC_Curve.svg")).unwrap()
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn quick_pipeline_reruns_only_the_edited_variant() {
    let ws = Workspace::new("quick");
    let yaml = std::fs::read_to_string(repo().join("pipelines/quick.yaml")).unwrap();
    ws.write("pipelines/quick.yaml", &yaml);
    let data = format!("params.data_dir={}", repo().join("data/bundled").display());
    // The README's main job as it ships (only the data folder is given, as a path into the repo).
    let base = ["run", "pipelines/quick.yaml", "--set", &data];
    ws.ok(&base);
    assert_eq!(ws.nodes_in("failed").len(), 0);
    let first_ran = ws.nodes_in("ran");
    assert_eq!(first_ran.len(), 57, "{first_ran:?}");
    // What each node cost: the stage worker measures the CPU seconds of every node it runs, and
    // the run record keeps them (at most every core for the node's whole wall time).
    let runs: serde_json::Value = serde_json::from_slice(&ws.pipe(&["runs", "--json"]).stdout).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for n in runs[0]["nodes"].as_array().unwrap().iter().filter(|n| n["stage"] == "pretrain" || n["stage"] == "train") {
        let (cpu, wall) = (n["cpu_s"].as_f64().unwrap_or_else(|| panic!("no cpu_s: {n}")), n["duration_s"].as_f64().unwrap());
        assert!(cpu > 0.0 && cpu <= wall * cores + 0.5, "{n}");
    }

    // Converged on the bundled data: the baseline's AUC floors, and the adaptive (Mahalanobis)
    // variant at least as good (issue: an under-trained quick job showed 0.76 / 0.38).
    let out = ws.pipe(&[
        "query",
        "SELECT dataset, method, auc FROM results WHERE mu2 = 0.0 ORDER BY dataset, method",
        "--format",
        "csv",
        "--results",
        "results/quick.parquet",
    ]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let auc = |d: &str, m: &str| -> f64 {
        csv.lines().find(|l| l.starts_with(&format!("{d},{m},"))).and_then(|l| l.rsplit(',').next()).unwrap().parse().unwrap()
    };
    for (d, floor) in [("mnist", 0.95), ("fashion-mnist", 0.88)] {
        assert!(auc(d, "radius") >= floor, "{d} baseline AUC {} < {floor}\n{csv}", auc(d, "radius"));
        assert!(auc(d, "mahalanobis") >= floor, "{d} adaptive AUC {} < {floor}\n{csv}", auc(d, "mahalanobis"));
    }
    // The report says what it is at its top; the ROC shows the DECLARED hybrid (plot.hybrid_mu2).
    assert!(ws.read("Deliverables/quick/report.md").contains("> Quick job: the bundled"), "{}", ws.read("Deliverables/quick/report.md"));
    let svg = String::from_utf8(read_svg(&ws)).unwrap();
    assert!(svg.contains("hybrid mu2=0.5 (declared") && !svg.contains("hybrid mu2=2"), "the ROC legend shows the declared hybrid");
    let plots = [
        "MNIST_ROC_Curve.png",
        "MNIST_ROC_Curve.svg",
        "MNIST_tSNE_Latent_Space.png",
        "MNIST_Grad_CAM_Comparative.png",
        "Fashion-MNIST_ROC_Curve.png",
        "Fashion-MNIST_tSNE_Latent_Space.png",
        "Fashion-MNIST_Grad_CAM_Comparative.png",
    ];
    let read = |ws: &Workspace, p: &str| std::fs::read(ws.dir.join("Deliverables/quick/Plots/Comparative").join(p)).unwrap();
    for p in plots {
        let bytes = read(&ws, p);
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(b"<svg"), "{p} is a PNG / SVG file");
    }
    // Documented sizes (width x height from the PNG header).
    for (p, w, h) in [("MNIST_ROC_Curve.png", 900, 760), ("MNIST_tSNE_Latent_Space.png", 1500, 530), ("MNIST_Grad_CAM_Comparative.png", 1150, 700)] {
        let b = read(&ws, p);
        let dims = (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()));
        assert_eq!(dims, (w, h), "{p}");
    }
    // One output of a node, copied out of the store with `pipe get` and read.
    let tensors = |node: &str, output: &str| -> std::collections::BTreeMap<String, tch::Tensor> {
        let file = format!("{output}.safetensors");
        ws.ok(&["get", "pipelines/quick.yaml", node, output, &file, "--set", &data]);
        tch::Tensor::read_safetensors(ws.dir.join(&file)).unwrap().into_iter().collect()
    };
    // Each Grad-CAM image carries its true class and score: the fixed anomalies of normal class 0
    // are the first test image of each of the classes 1-6, in that order.
    let cam = tensors("explain[dataset=mnist,mu2=0.0,method=radius]", "heatmaps");
    assert_eq!(Vec::<i64>::try_from(&cam["fixed_class"]).unwrap(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(cam["fixed_score"].size(), vec![6]);
    // ... and the threshold its captions compare each score with is the model's fitted one.
    let fit = tensors("threshold[dataset=mnist,mu2=0.0,method=radius]", "fit");
    assert_eq!(cam["threshold"].double_value(&[0]), fit["threshold"].double_value(&[0]));
    let snapshot = |ws: &Workspace| -> Vec<String> { plots.iter().map(|p| blake3::hash(&read(ws, p)).to_hex().to_string()).collect() };
    let before = snapshot(&ws);
    let report_before = ws.read("Deliverables/quick/report.md");
    assert!(report_before.contains("| hybrid mu1=1, mu2=2.0 |") && !report_before.contains("mu2=1.0 | 0.9863 / 0.9879 | 0."));

    // Edit: the mu2 = 2.0 variant becomes mu2 = 1.0.
    let mut edited: Vec<&str> = base.to_vec();
    edited.extend(["--set", "train.matrix.mu2=[0.0, 0.5, 1.0]"]);
    ws.ok(&edited);
    let mut expected: Vec<String> = Vec::new();
    for d in ["mnist", "fashion-mnist"] {
        let c = format!("dataset={d},normal_class=0,seed=0,mu2=1.0");
        expected.push(format!("train[{c}]"));
        expected.push(format!("tsne[{c}]"));
        for m in ["radius", "mahalanobis"] {
            for stage in ["threshold", "evaluate", "explain"] {
                expected.push(format!("{stage}[{c},method={m}]"));
            }
        }
        expected.push(format!("plot[dataset={d}]"));
    }
    expected.extend(["results".to_string(), "explain_results".to_string(), "report".to_string()]);
    expected.sort();
    assert_eq!(ws.nodes_in("ran"), expected);
    let cached = ws.nodes_in("cached");
    for n in [
        "ingest[dataset=mnist,normal_class=0]",
        "pretrain[dataset=mnist,normal_class=0,seed=0]",
        "train[dataset=fashion-mnist,normal_class=0,seed=0,mu2=0.5]",
    ] {
        assert!(cached.contains(&n.to_string()), "{n} must be cached: {cached:?}");
    }
    assert_eq!(cached.len() + expected.len(), 57);

    // The t-SNE figures have one panel per trained model, so they change. (The ROC and Grad-CAM
    // figures show baseline, BEST hybrid and adaptive: they were regenerated, and change only if
    // the best hybrid did.)
    let after = snapshot(&ws);
    for (i, p) in plots.iter().enumerate() {
        if p.contains("tSNE") {
            assert_ne!(before[i], after[i], "{p} must change with the new variant");
        }
    }
    let report = ws.read("Deliverables/quick/report.md");
    assert_ne!(report, report_before);
    let line = report.lines().find(|l| l.starts_with("| hybrid mu1=1, mu2=1.0 |")).unwrap();
    assert!(!line.contains("not run"), "{line}");
    let line = report.lines().find(|l| l.starts_with("| hybrid mu1=1, mu2=2.0 |")).unwrap();
    assert!(line.contains("not run"), "{line}");

    // The results table answers SQL.
    let out = ws.pipe(&[
        "query",
        "SELECT dataset, mu2, method, auc FROM results WHERE mu2 = 1.0 ORDER BY dataset, method",
        "--format",
        "csv",
        "--results",
        "results/quick.parquet",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "dataset,mu2,method,auc");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[1].starts_with("fashion-mnist,1.0,mahalanobis,"));
}
