//! The thresholds of the committed study (`results/results.parquet`, pipelines/report.yaml) deliver
//! their nominal false-positive rate on the normal TEST images, which neither training nor the
//! threshold ever saw.
//!
//! A threshold cut at the 0.95 quantile of n_cal held-out normals flags each new normal with
//! probability 5% + e, where e (the quantile's sampling error) has variance ~ a(1-a)/n_cal; its
//! FPR measured on n_test normals adds a(1-a)/n_test. Every row of one dataset shares ONE held-out
//! draw (`split_seed`) and ONE test set, so the rows are not independent trials: the dataset's mean
//! FPR is one draw with standard deviation sqrt(a(1-a)(1/n_cal + 1/n_test)) (1.1 points here), and
//! its 95% interval is what the mean must lie in. (The test-set binomial alone, [3.65%, 6.35%] for
//! 1,000 normals, ignores the calibration set's own sampling error.) A threshold cut at the wrong
//! level, on scores from the wrong split, or on test images fails it.

use polars::prelude::*;

#[test]
fn heldout_thresholds_keep_the_nominal_false_positive_rate_on_test_normals() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/results.parquet");
    let df = stages::table::read_parquet(&path).unwrap();
    let col = |n: &str| df.column(n).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().into_no_null_iter().collect::<Vec<f64>>();
    let (fpr, n_test, n_anom) = (col("fpr"), col("n_test"), col("n_anomalies"));
    let dataset: Vec<String> = df.column("dataset").unwrap().str().unwrap().into_no_null_iter().map(str::to_string).collect();
    let alpha = 0.05;
    // Normal class 0 training images: MNIST 5,923, Fashion-MNIST 6,000; 10% held out (ingest's
    // `holdout` default, rounded).
    for (name, n_cal) in [("mnist", 592.0), ("fashion-mnist", 600.0)] {
        let rows: Vec<usize> = (0..df.height()).filter(|&i| dataset[i] == name).collect();
        assert!(rows.len() >= 20, "{name}: {} rows", rows.len());
        let mean = rows.iter().map(|&i| fpr[i]).sum::<f64>() / rows.len() as f64;
        let normals = n_test[rows[0]] - n_anom[rows[0]];
        let sd = (alpha * (1.0 - alpha) * (1.0 / n_cal + 1.0 / normals)).sqrt();
        let (lo, hi) = (alpha - 1.96 * sd, alpha + 1.96 * sd);
        assert!((lo..=hi).contains(&mean), "{name}: mean test FPR {mean:.4} over {} rows outside [{lo:.4}, {hi:.4}]", rows.len());
    }
}
