//! `pipe query SQL`: polars SQL on the results table.

use std::path::PathBuf;

use crate::commands::{CliError, ExitStatus};

/// `pipe query`.
pub(crate) fn query(sql: String, results: PathBuf, format: crate::query::QueryFormat) -> Result<ExitStatus, CliError> {
    let text = crate::query::run(&sql, &results).and_then(|mut df| crate::query::render(&mut df, format)).map_err(CliError::Query)?;
    print!("{text}");
    Ok(ExitStatus::Success)
}
