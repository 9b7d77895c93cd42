//! `concat`: gathers Parquet tables (input `tables`, usually `gather: true`) into one, in input
//! order, and labels each row with the upstream node it came from: a `node` column and one column
//! per grid axis. The labels are attached here, where the engine knows them (they are part of this
//! node's key), never baked into the upstream's cached bytes. A column missing from some tables is
//! null there; a column whose types differ takes their common supertype when that is lossless
//! (ints and floats -> Float64) and is an error otherwise. The report's `results` stage uses it to
//! collect one metrics row per evaluated node into `results/results.parquet`.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::ml::{pe, to_stage};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct Concat;

/// The type two columns of one name can share without losing a value, or None.
fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (DataType::Null, t) | (t, DataType::Null) => Some(t.clone()),
        (x, y) if x.is_integer() && y.is_integer() => {
            // Widen within signedness; mixed signedness goes to Int64 (checked value by value).
            Some(if x.is_unsigned_integer() && y.is_unsigned_integer() { DataType::UInt64 } else { DataType::Int64 })
        }
        (x, y) if x.is_primitive_numeric() && y.is_primitive_numeric() => Some(DataType::Float64),
        // Dictionary strings (pyarrow/pandas categoricals) beside plain strings: strings.
        (x, y) if x.is_string() || x.is_categorical() => (y.is_string() || y.is_categorical()).then_some(DataType::String),
        _ => None,
    }
}

/// Vertical concatenation over the union of columns (first-seen order), nulls where missing.
/// `sources` names each frame in errors. Casts are strict: a value that does not fit is an error.
pub fn concat_diagonal(frames: Vec<DataFrame>, sources: &[String]) -> Result<DataFrame, StageError> {
    let mut names: Vec<(PlSmallStr, DataType, usize)> = Vec::new();
    for (i, df) in frames.iter().enumerate() {
        for c in df.get_columns() {
            match names.iter_mut().find(|(n, _, _)| n == c.name()) {
                None => names.push((c.name().clone(), c.dtype().clone(), i)),
                Some((n, t, first)) => match common_type(t, c.dtype()) {
                    Some(common) => *t = common,
                    None => {
                        return Err(StageError::refused(
                            format!(
                                "column `{n}` is {t} in {} but {} in {}; these cannot be combined without changing values",
                                sources[*first],
                                c.dtype(),
                                sources[i]
                            ),
                            "make both write the same type",
                        ))
                    }
                },
            }
        }
    }
    let mut out: Option<DataFrame> = None;
    for (i, df) in frames.into_iter().enumerate() {
        let h = df.height();
        let cols: Vec<Column> = names
            .iter()
            .map(|(n, t, _)| match df.column(n) {
                Ok(c) => c.strict_cast(t).map_err(|e| StageError::failed(format!("column `{n}` of {}: {e}", sources[i]))),
                Err(_) => Ok(Column::full_null(n.clone(), h, t)),
            })
            .collect::<Result<_, _>>()?;
        let df = DataFrame::new(cols).map_err(pe)?;
        out = Some(match out {
            Some(mut acc) => {
                acc.vstack_mut(&df).map_err(pe)?;
                acc
            }
            None => df,
        });
    }
    Ok(out.unwrap_or_default())
}

/// One column per grid axis over all inputs, typed once for the whole axis: Int64 when every value
/// is an int, Float64 when every value is a number, Boolean, else the printed values as strings.
fn coordinate_columns(coords: &[BTreeMap<String, Value>], heights: &[usize]) -> Vec<Vec<Column>> {
    let mut axes: Vec<&String> = Vec::new();
    for c in coords {
        for k in c.keys() {
            if !axes.contains(&k) {
                axes.push(k);
            }
        }
    }
    let mut per_frame: Vec<Vec<Column>> = vec![Vec::new(); coords.len()];
    for axis in axes {
        let values: Vec<Option<&Value>> = coords.iter().map(|c| c.get(axis)).collect();
        let all = |f: fn(&Value) -> bool| values.iter().flatten().all(|v| f(v));
        for (i, v) in values.iter().enumerate() {
            let h = heights[i];
            let name: PlSmallStr = axis.as_str().into();
            let col = if all(|v| matches!(v, Value::Int(_))) {
                Column::new(name, vec![v.and_then(Value::as_i64); h])
            } else if all(|v| matches!(v, Value::Int(_) | Value::Float(_))) {
                Column::new(name, vec![v.and_then(Value::as_f64); h])
            } else if all(|v| matches!(v, Value::Bool(_))) {
                Column::new(name, vec![v.and_then(Value::as_bool); h])
            } else {
                Column::new(name, vec![v.map(|v| v.to_string()); h])
            };
            per_frame[i].push(col);
        }
    }
    per_frame
}

impl StageKind for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    /// 2: rows labelled here (node id and grid coordinates), not by the upstream stage.
    fn version(&self) -> u32 {
        2
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("tables", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("table", "table.parquet")])
    }
    fn reads_input_identity(&self) -> bool {
        true
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let paths = ctx.input_all("tables");
        let nodes = ctx.input_nodes.get("tables").cloned().unwrap_or_default();
        let coords = ctx.input_coords.get("tables").cloned().unwrap_or_default();
        let mut frames = paths.iter().map(|p| stages::table::read_parquet(p).map_err(to_stage)).collect::<Result<Vec<_>, _>>()?;
        let sources: Vec<String> = (0..frames.len())
            .map(|i| match nodes.get(i) {
                Some(n) => format!("{n} ({})", paths[i].display()),
                None => paths[i].display().to_string(),
            })
            .collect();
        // Labels first: the node id, then the coordinates (which replace same-named columns).
        if nodes.len() == frames.len() {
            let heights: Vec<usize> = frames.iter().map(DataFrame::height).collect();
            let labels = coordinate_columns(&coords, &heights);
            for (i, (df, coord_cols)) in frames.iter_mut().zip(labels).enumerate() {
                let mut cols = vec![Column::new("node".into(), vec![nodes[i].as_str(); heights[i]])];
                cols.extend(coord_cols);
                let taken: Vec<PlSmallStr> = cols.iter().map(|c| c.name().clone()).collect();
                cols.extend(df.get_columns().iter().filter(|c| !taken.contains(c.name())).cloned());
                *df = DataFrame::new(cols).map_err(pe)?;
            }
        }
        let mut df = concat_diagonal(frames, &sources)?;
        df.rechunk_mut();
        ctx.log(format!("{} rows, {} columns", df.height(), df.width()));
        stages::table::write_parquet(&mut df, &ctx.output("table")).map_err(to_stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_floats_combine_as_floats_without_loss() {
        let a = df!("mu2" => [0i64]).unwrap();
        let b = df!("mu2" => [0.5f64]).unwrap();
        let c = df!("mu2" => [2i64]).unwrap();
        let out = concat_diagonal(vec![a, b, c], &["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!(out.column("mu2").unwrap().dtype(), &DataType::Float64);
        let v: Vec<f64> = out.column("mu2").unwrap().f64().unwrap().into_no_null_iter().collect();
        assert_eq!(v, vec![0.0, 0.5, 2.0]);
    }

    #[test]
    fn an_impossible_union_names_both_sources_and_the_column() {
        let a = df!("x" => [1i64]).unwrap();
        let b = df!("x" => ["one"]).unwrap();
        let e = concat_diagonal(vec![a, b], &["first.parquet".into(), "second.parquet".into()]).unwrap_err();
        let shown = engine::error::render(&e);
        assert!(shown.contains("column `x`") && shown.contains("first.parquet") && shown.contains("second.parquet"), "{shown}");
        assert!(shown.ends_with("\n  = hint: make both write the same type"), "{shown}");
    }

    #[test]
    fn dictionary_strings_and_strings_combine_as_strings() {
        let a = df!("d" => ["mnist"]).unwrap();
        let b = DataFrame::new(vec![Column::new("d".into(), ["cifar10"]).cast(&DataType::from_categories(Categories::global())).unwrap()]).unwrap();
        let out = concat_diagonal(vec![a, b], &["a".into(), "b".into()]).unwrap();
        let v: Vec<&str> = out.column("d").unwrap().str().unwrap().into_no_null_iter().collect();
        assert_eq!(v, vec!["mnist", "cifar10"]);
    }
}
