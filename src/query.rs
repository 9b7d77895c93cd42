//! `pipe query "SQL"`: polars SQL over the results table (registered as `results`).

use std::path::Path;

use polars::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
}

/// Why a query printed no rows.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The results file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The file is not a Parquet table pipe can read.
    #[error("{path}: cannot read it as a Parquet table ({source})")]
    Parquet { path: String, source: PolarsError },
    /// The SQL failed (polars' message).
    #[error("query failed: {0}")]
    Sql(PolarsError),
}

impl crate::error::Hint for QueryError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            QueryError::Read { .. } => "run the pipeline first (`pipe run pipelines/quick.yaml`), or pass --results PATH".into(),
            QueryError::Parquet { .. } => "pipe reads integers of every width (unsigned too), floats, booleans, strings, dictionary strings, dates, times, timestamps, decimals and nulls; a column of another type (a struct, a float16) must be converted first".into(),
            QueryError::Sql(_) => "the table is named `results`; `pipe query \"SELECT * FROM results LIMIT 0\"` lists its columns".into(),
        })
    }
}

pub fn load(path: &Path) -> Result<DataFrame, QueryError> {
    let file = std::fs::File::open(path).map_err(|source| QueryError::Read { path: path.display().to_string(), source })?;
    ParquetReader::new(file).finish().map_err(|source| QueryError::Parquet { path: path.display().to_string(), source })
}

pub fn run(sql: &str, results: &Path) -> Result<DataFrame, QueryError> {
    let df = load(results)?;
    let mut ctx = polars::sql::SQLContext::new();
    ctx.register("results", df.lazy());
    ctx.execute(sql).and_then(|lf| lf.collect()).map_err(QueryError::Sql)
}

pub fn render(df: &mut DataFrame, format: QueryFormat) -> Result<String, QueryError> {
    match format {
        QueryFormat::Table => Ok(format!("{df}")),
        QueryFormat::Csv => {
            let mut buf = Vec::new();
            CsvWriter::new(&mut buf).finish(df).map_err(QueryError::Sql)?;
            Ok(String::from_utf8_lossy(&buf).to_string())
        }
        QueryFormat::Json => {
            let mut buf = Vec::new();
            JsonWriter::new(&mut buf).with_json_format(JsonFormat::Json).finish(df).map_err(QueryError::Sql)?;
            Ok(String::from_utf8_lossy(&buf).to_string() + "\n")
        }
    }
}
