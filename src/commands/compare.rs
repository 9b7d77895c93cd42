//! `pipe compare TABLE --metric M --baseline COLUMN=VALUE,...`: every cell against its baseline
//! cell, paired over seeds (the tests themselves are in [`crate::compare`]).

use std::path::Path;

use crate::commands::{CliError, ExitStatus};

/// `pipe compare`'s arguments beside the table.
pub(crate) struct CompareArgs {
    pub metric: String,
    pub baseline: String,
    pub replicate: String,
    pub within: Option<String>,
    pub lower_is_better: bool,
    pub json: bool,
}

/// `pipe compare`.
pub(crate) fn compare(table: &Path, a: CompareArgs) -> Result<ExitStatus, CliError> {
    let CompareArgs { metric, baseline, replicate, within, lower_is_better, json } = a;
    let df = crate::query::load(table).map_err(CliError::Query)?;
    let baseline = crate::compare::parse_baseline(&baseline).map_err(CliError::Compare)?;
    let opts = crate::compare::Options { metric, baseline, replicate, within, lower_is_better };
    let outcome = crate::compare::compare(&df, &opts).map_err(CliError::Compare)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&crate::compare::to_json(&outcome)).unwrap_or_default());
        for note in outcome.unmatched_notes() {
            eprintln!("note: {note}");
        }
    } else {
        print!("{}", crate::compare::render_table(&outcome));
    }
    Ok(ExitStatus::Success)
}
