//! `report`: `report.md`, the published table's layout with our numbers (mean ± std over seeds)
//! beside the published ones, and the all-classes comparison with Ruff et al. when run.

use polars::prelude::*;
use stages::report::{loss_terms, markdown, LossTerms, ResultRow};

use super::ml::{pe, to_stage};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct Report;


/// Reads the rows the report needs; absent grid columns take their defaults (class 0, seed 0, mu2 0).
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
    let (class, seed, mu2) = (i64s("normal_class")?, i64s("seed")?, f64s("mu2", 0.0)?);
    let (auc, oracle, f1) = (f64s("auc", f64::NAN)?, f64s("oracle_f1", f64::NAN)?, f64s("f1", f64::NAN)?);
    let (precision, recall, auprc) = (f64s("precision", f64::NAN)?, f64s("recall", f64::NAN)?, f64s("auprc", f64::NAN)?);
    Ok((0..n)
        .map(|i| ResultRow {
            dataset: dataset[i].clone(),
            normal_class: class[i],
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

impl StageKind for Report {
    fn name(&self) -> &'static str {
        "report"
    }
    /// 2: the header no longer names one results file. 3: a note, paired differences over seeds
    /// and the hybrid's loss terms.
    fn version(&self) -> u32 {
        3
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::optional("note", ParamType::Str, Value::Str(String::new()),
            "printed at the top of the report: what this run is (data, epochs, seeds), e.g. that it is not the published comparison")]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::Named(vec![("results", true), ("histories", false)])
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
        let mut md = markdown(&rows(&df)?, ctx.params.str("note").unwrap_or(""));
        let coords = ctx.input_coords.get("histories").cloned().unwrap_or_default();
        let mut terms = Vec::new();
        for (path, c) in ctx.input_all("histories").iter().zip(coords) {
            let h = stages::table::read_parquet(path).map_err(to_stage)?;
            let col = |n: &str| -> Result<Vec<f64>, StageError> { Ok(h.column(n).map_err(pe)?.f64().map_err(pe)?.into_no_null_iter().collect()) };
            let (svdd, rec) = (col("svdd_loss")?, col("reconstruction_loss")?);
            let (Some(first), Some(last)) = (svdd.first().zip(rec.first()), svdd.last().zip(rec.last())) else { continue };
            let dataset = c.get("dataset").and_then(Value::as_str).unwrap_or("?").to_string();
            let mu2 = c.get("mu2").and_then(Value::as_f64).unwrap_or(0.0);
            terms.push(LossTerms { dataset, mu2, first: (*first.0, *first.1), last: (*last.0, *last.1) });
        }
        md.push_str(&loss_terms(&terms));
        std::fs::write(ctx.output("markdown"), md).map_err(|e| StageError::io("write report.md", e))
    }
}
