//! `pipe push`: upload every record and object this machine's cache holds that the remote lacks.

use crate::commands::common::open_store;
use crate::commands::{CliError, Ctx, ExitStatus};

/// `pipe push`.
pub(crate) fn push(g: &Ctx<'_>) -> Result<ExitStatus, CliError> {
    let store = open_store(g.store, g.cache)?;
    if store.remote().is_none() {
        return Err(CliError::PushNeedsRemote);
    }
    let _lock = store.lock_shared(|h| eprintln!("waiting for `pipe gc` on this store ({h})"))?;
    let stats = store.push()?;
    for n in &stats.incomplete {
        eprintln!("warning: not pushed: {n}");
    }
    println!("pushed {} records, {} objects ({:.1} MB), {} refs to {}", stats.records, stats.objects, stats.bytes as f64 / 1e6, stats.refs, g.store);
    Ok(ExitStatus::Success)
}
