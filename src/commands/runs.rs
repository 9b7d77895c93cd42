//! `pipe runs`: the run history, oldest first.

use crate::commands::common::open_store;
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::error::{render, Hint};

/// `pipe runs` on a store without runs: a note, not an error (exit 0).
struct NoRuns {
    store: String,
}

impl std::fmt::Display for NoRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no runs in {} yet", self.store)
    }
}

impl Hint for NoRuns {
    fn hint(&self) -> Option<String> {
        Some("`pipe run FILE` records one".into())
    }
}

/// `pipe runs`.
pub(crate) fn runs(g: &Ctx<'_>, json: bool, last: Option<usize>) -> Result<ExitStatus, CliError> {
    let store = open_store(g.store, g.cache)?;
    let mut runs = store.runs();
    if let Some(n) = last {
        runs.drain(..runs.len().saturating_sub(n));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runs).expect("runs serialise"));
    } else if runs.is_empty() {
        eprintln!("{}", render(&NoRuns { store: store.describe() }));
    } else {
        print!("{}", crate::runs::table(&runs));
    }
    Ok(ExitStatus::Success)
}
