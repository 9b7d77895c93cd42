//! `concat`: gathers Parquet tables (input `tables`, usually `gather: true`) into one, in input
//! order; a column missing from some tables is null there. The report's `results` stage uses it
//! to collect one metrics row per evaluated node into `results/results.parquet`.

use polars::prelude::*;

use super::ml::{pe, to_stage};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params, RunContext, StageError, StageKind};

pub struct Concat;


/// Vertical concatenation over the union of columns (first-seen order), nulls where missing.
pub fn concat_diagonal(frames: Vec<DataFrame>) -> Result<DataFrame, PolarsError> {
    let mut names: Vec<(PlSmallStr, DataType)> = Vec::new();
    for df in &frames {
        for c in df.get_columns() {
            if !names.iter().any(|(n, _)| n == c.name()) {
                names.push((c.name().clone(), c.dtype().clone()));
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    for df in frames {
        let h = df.height();
        let cols: Vec<Column> = names
            .iter()
            .map(|(n, t)| match df.column(n) {
                Ok(c) => c.cast(t),
                Err(_) => Ok(Column::full_null(n.clone(), h, t)),
            })
            .collect::<Result<_, _>>()?;
        let df = DataFrame::new(cols)?;
        out = Some(match out {
            Some(mut acc) => {
                acc.vstack_mut(&df)?;
                acc
            }
            None => df,
        });
    }
    Ok(out.unwrap_or_default())
}

impl StageKind for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::Named(vec![("tables", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("table", "table.parquet")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let frames = ctx
            .input_all("tables")
            .iter()
            .map(|p| stages::table::read_parquet(p).map_err(to_stage))
            .collect::<Result<Vec<_>, _>>()?;
        let mut df = concat_diagonal(frames).map_err(pe)?;
        df.rechunk_mut();
        ctx.log(format!("{} rows, {} columns", df.height(), df.width()));
        stages::table::write_parquet(&mut df, &ctx.output("table")).map_err(to_stage)
    }
}
