//! `evaluate`: ROC AUC, AUPRC, and precision / recall / F1 at the threshold fitted on training
//! data, plus the oracle best F1 over TEST thresholds (reported as such, for comparison with the
//! published table), and the TPR at the nominal FPR (1 - the threshold's `level`) on the test
//! ROC, the yardstick for the fitted threshold's recall. Outputs `metrics` (one row: the
//! threshold method + metrics; the node id and
//! grid coordinates are added by the gather that collects the rows, `concat`) and `roc`.

use polars::prelude::*;
use stages::eval::{metrics, ScoreTable};

use super::ml::{pe, to_stage};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params, RunContext, StageError, StageKind};

pub struct Evaluate;

impl StageKind for Evaluate {
    fn name(&self) -> &'static str {
        "evaluate"
    }
    /// 2: no `train_seconds` column (wall time made the table differ between identical runs;
    /// durations are in the run records). 3: no node id or coordinates in the row (they are not in
    /// this node's key; two cells with identical inputs shared one row). 4: `nominal_fpr` and
    /// `tpr_at_nominal_fpr` columns.
    fn version(&self) -> u32 {
        4
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("scores", true), ("threshold", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("metrics", "metrics.parquet"), OutputSpec::new("roc", "roc.parquet")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let table = ScoreTable::read(ctx.input("scores")?).map_err(to_stage)?;
        let th = stages::table::read_parquet(ctx.input("threshold")?).map_err(to_stage)?;
        let threshold = th.column("threshold").map_err(pe)?.f64().map_err(pe)?.get(0).unwrap_or(f64::NAN);
        let method = th.column("method").map_err(pe)?.str().map_err(pe)?.get(0).unwrap_or("").to_string();
        // The FPR the threshold was cut for (its quantile level's complement).
        // (NaN for a threshold table without a level: then so is the TPR at it.)
        let level = th.column("level").ok().and_then(|c| c.f64().ok()?.get(0));
        let nominal_fpr = level.map_or(f64::NAN, |l| 1.0 - l);
        let test = table.rows("test");
        let scores = ScoreTable::pick(&table.score, &test);
        let labels = ScoreTable::pick(&table.label, &test);
        let auc = metrics::roc_auc(&scores, &labels).map_err(to_stage)?;
        let ap = metrics::average_precision(&scores, &labels).map_err(to_stage)?;
        let c = metrics::classify(&scores, &labels, threshold).map_err(to_stage)?;
        let (oracle, _) = metrics::oracle_f1(&scores, &labels).map_err(to_stage)?;
        let fpr = c.fp as f64 / (c.fp + c.tn).max(1) as f64;
        let roc = metrics::roc_curve(&scores, &labels).map_err(to_stage)?;
        let tpr_nominal = if nominal_fpr.is_nan() { f64::NAN } else { metrics::tpr_at_fpr(&roc, nominal_fpr) };
        ctx.log(format!(
            "AUC {auc:.4} AUPRC {ap:.4} F1@threshold {:.4} (oracle {oracle:.4}); FPR {fpr:.4} TPR {:.4} at the threshold, TPR {tpr_nominal:.4} at FPR {nominal_fpr:.2} on the test ROC",
            c.f1, c.recall
        ));
        let mut cols: Vec<Column> = vec![Column::new("method".into(), [method.as_str()])];
        cols.extend([
            Column::new("auc".into(), [auc]),
            Column::new("auprc".into(), [ap]),
            Column::new("f1".into(), [c.f1]),
            Column::new("precision".into(), [c.precision]),
            Column::new("recall".into(), [c.recall]),
            Column::new("fpr".into(), [fpr]),
            Column::new("nominal_fpr".into(), [nominal_fpr]),
            Column::new("tpr_at_nominal_fpr".into(), [tpr_nominal]),
            Column::new("oracle_f1".into(), [oracle]),
            Column::new("threshold".into(), [threshold]),
            Column::new("n_test".into(), [test.len() as i64]),
            Column::new("n_anomalies".into(), [labels.iter().sum::<i64>()]),
        ]);
        let mut row = DataFrame::new(cols).map_err(pe)?;
        stages::table::write_parquet(&mut row, &ctx.output("metrics")).map_err(to_stage)?;
        let mut roc_df = DataFrame::new(vec![
            Column::new("fpr".into(), roc.iter().map(|r| r.0).collect::<Vec<f64>>()),
            Column::new("tpr".into(), roc.iter().map(|r| r.1).collect::<Vec<f64>>()),
            Column::new("threshold".into(), roc.iter().map(|r| r.2).collect::<Vec<f64>>()),
        ])
        .map_err(pe)?;
        stages::table::write_parquet(&mut roc_df, &ctx.output("roc")).map_err(to_stage)
    }
}
