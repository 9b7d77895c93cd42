//! `report`: `report.md`, the published table's layout with our numbers (mean ± std over seeds)
//! beside the published ones, and the all-classes comparison with Ruff et al. when run.

use polars::prelude::*;
use std::collections::BTreeMap;

use stages::report::{loss_terms, loss_weights, markdown, LossTerms, ResultRow};

use super::ml::{pe, to_stage};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct Report;

/// Reads the rows the report needs; absent grid columns take their defaults (class 0, seed 0, mu2 0,
/// mu1 unknown). The loss weights a row's model really trained with come from its training history
/// where one was gathered ([`weights_from_histories`]).
pub fn rows(df: &DataFrame) -> Result<Vec<ResultRow>, StageError> {
    let n = df.height();
    let f64s = |name: &str, default: f64| -> Result<Vec<f64>, StageError> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::Float64).map_err(pe)?.f64().map_err(pe)?.into_iter().map(|v| v.unwrap_or(default)).collect()),
            Err(_) => Ok(vec![default; n]),
        }
    };
    let i64s = |name: &str| -> Result<Vec<i64>, StageError> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::Int64).map_err(pe)?.i64().map_err(pe)?.into_iter().map(|v| v.unwrap_or(0)).collect()),
            Err(_) => Ok(vec![0; n]),
        }
    };
    let strs = |name: &str, default: &str| -> Result<Vec<String>, StageError> {
        match df.column(name) {
            Ok(c) => Ok(c.str().map_err(pe)?.into_iter().map(|v| v.unwrap_or(default).to_string()).collect()),
            Err(_) => Ok(vec![default.to_string(); n]),
        }
    };
    let (dataset, method) = (strs("dataset", "?")?, strs("method", "radius")?);
    let (class, seed, mu2, mu1) = (i64s("normal_class")?, i64s("seed")?, f64s("mu2", 0.0)?, f64s("mu1", f64::NAN)?);
    let (auc, oracle, f1) = (f64s("auc", f64::NAN)?, f64s("oracle_f1", f64::NAN)?, f64s("f1", f64::NAN)?);
    let (precision, recall, auprc) = (f64s("precision", f64::NAN)?, f64s("recall", f64::NAN)?, f64s("auprc", f64::NAN)?);
    Ok((0..n)
        .map(|i| ResultRow {
            dataset: dataset[i].clone(),
            normal_class: class[i],
            mu1: Some(mu1[i]).filter(|m| m.is_finite()),
            mu2: mu2[i],
            method: method[i].clone(),
            seed: seed[i],
            auc: auc[i],
            oracle_f1: oracle[i],
            f1: f1[i],
            precision: precision[i],
            recall: recall[i],
            auprc: auprc[i],
        })
        .collect())
}

/// Whether row `i` of the results table carries grid coordinate `key = want` (numbers compare
/// by value, so an Int64 column matches an integer coordinate and a Float64 one a float).
fn row_has(df: &DataFrame, i: usize, key: &str, want: &Value) -> bool {
    let Ok(col) = df.column(key) else { return false };
    let Ok(v) = col.get(i) else { return false };
    match want {
        Value::Str(s) => v.get_str() == Some(s.as_str()),
        Value::Bool(b) => matches!(v, AnyValue::Boolean(x) if x == *b),
        w => match (w.as_f64(), v.extract::<f64>()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

/// A node's grid coordinates.
type Coords = BTreeMap<String, Value>;

/// The (mu1, mu2) each results row's model trained with: for every gathered training history,
/// the weights its logged losses imply ([`loss_weights`]), given to the rows whose columns carry
/// all of that history's grid coordinates (evaluation rows extend their model's coordinates).
fn weights_from_histories(df: &DataFrame, histories: &[(Coords, (f64, f64))], rows: &mut [ResultRow]) {
    for (i, row) in rows.iter_mut().enumerate() {
        let mut found = histories.iter().filter(|(c, _)| c.iter().all(|(k, v)| row_has(df, i, k, v)));
        if let (Some((_, (mu1, mu2))), None) = (found.next(), found.next()) {
            row.mu1 = Some(*mu1);
            row.mu2 = *mu2;
        }
    }
}

impl StageKind for Report {
    fn name(&self) -> &'static str {
        "report"
    }
    /// 2: the header no longer names one results file. 3: a note, paired differences over seeds
    /// and the hybrid's loss terms. 4: rows are named by the loss weights their models trained with
    /// (from the histories), never assumed mu1 = 1. 5: the paired section says how many of its
    /// intervals would exclude 0 by chance. 6: one factor at a time (a hybrid against the baseline
    /// under its own threshold method), t and Wilcoxon p, Holm-adjusted verdicts (the `stats` crate).
    /// 7: all classes: every variant per class beside Ruff et al.'s Table 1, and each variant
    /// against its one-factor baseline across the classes (one pair per class).
    fn version(&self) -> u32 {
        7
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::optional(
            "note",
            ParamType::Str,
            Value::Str(String::new()),
            "printed at the top of the report: what this run is (data, epochs, seeds), e.g. that it is not the published comparison",
        )]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("results", true), ("histories", false)])
    }
    /// Reads the grid coordinates (dataset, mu2) of the gathered training histories.
    fn reads_input_identity(&self) -> bool {
        true
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("markdown", "report.md")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let df = stages::table::read_parquet(ctx.input("results")?).map_err(to_stage)?;
        let coords = ctx.input_coords.get("histories").cloned().unwrap_or_default();
        let (mut terms, mut weights) = (Vec::new(), Vec::new());
        for (path, c) in ctx.input_all("histories").iter().zip(coords) {
            let h = stages::table::read_parquet(path).map_err(to_stage)?;
            let col = |n: &str| -> Result<Vec<f64>, StageError> { Ok(h.column(n).map_err(pe)?.f64().map_err(pe)?.into_no_null_iter().collect()) };
            let (loss, svdd, rec) = (col("loss")?, col("svdd_loss")?, col("reconstruction_loss")?);
            let Some((mu1, mu2)) = loss_weights(&loss, &svdd, &rec) else { continue };
            weights.push((c.clone(), (mu1, mu2)));
            let (Some(first), Some(last)) = (svdd.first().zip(rec.first()), svdd.last().zip(rec.last())) else { continue };
            let dataset = c.get("dataset").and_then(Value::as_str).unwrap_or("?").to_string();
            terms.push(LossTerms { dataset, mu2, first: (*first.0, *first.1), last: (*last.0, *last.1) });
        }
        let mut rows = rows(&df)?;
        weights_from_histories(&df, &weights, &mut rows);
        let mut md = markdown(&rows, ctx.params.str("note").unwrap_or(""));
        md.push_str(&loss_terms(&terms));
        std::fs::write(ctx.output("markdown"), md).map_err(|e| StageError::io("write report.md", e))
    }
}
