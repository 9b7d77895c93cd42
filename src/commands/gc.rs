//! `pipe gc`: delete objects no record references; with `--records`, also the records (and
//! checkpoints) that no pipeline file in the workspace and no recent run uses; here or on the
//! remote store.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::commands::common::{open_store, ref_namespace, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::config;
use crate::error::render;
use crate::graph::GraphBuilder;
use crate::plan;
use crate::stage::Registry;
use crate::store::{now, Store};

/// `pipe gc`'s arguments.
pub(crate) struct GcArgs {
    /// Also remove records nothing current uses.
    pub records: bool,
    /// With `records`: keep what runs of the last DAYS days used.
    pub keep_days: f64,
    /// List, remove nothing.
    pub dry_run: bool,
    /// Collect the remote store instead of the local cache.
    pub remote: bool,
    /// With `remote`: keep anything uploaded less than this many hours ago.
    pub older_than: f64,
    /// With `records`: go on past workspace files that look like pipelines but do not load.
    pub skip_invalid: bool,
}

/// The checkpoint prefixes of the results `keys` (those of training kinds).
fn live_prefixes(store: &Store, registry: &Registry, keys: &HashSet<String>) -> HashSet<String> {
    keys.iter()
        .filter_map(|k| {
            let fp = store.record(k).ok().flatten()?.fingerprint;
            let params = registry.get(&fp.kind)?.params();
            Some(crate::checkpoint::prefix_key(&fp, crate::checkpoint::horizon(&params)?))
        })
        .collect()
}

/// `pipe gc`.
pub(crate) fn gc(g: &Ctx<'_>, a: GcArgs) -> Result<ExitStatus, CliError> {
    let GcArgs { records, keep_days, dry_run, remote, older_than, skip_invalid } = a;
    let store = open_store(g.store, g.cache)?;
    if remote {
        if store.remote().is_none() {
            return Err(CliError::GcNeedsRemote);
        }
        let live = if records {
            let (keys, notes) = live_keys(&store, g.registry, keep_days, skip_invalid).map_err(CliError::GcInvalidPipelines)?;
            notes.iter().for_each(|n| eprintln!("{n}"));
            Some(keys)
        } else {
            None
        };
        let prefixes = live.as_ref().map(|keys| live_prefixes(&store, g.registry, keys));
        let stats = store.gc_remote(live.as_ref(), (older_than.max(0.0) * 3600.0) as u64)?;
        println!(
            "removed {} objects and {} records ({:.1} MB) from {}; kept {} objects",
            stats.objects_removed,
            stats.records_removed,
            stats.bytes_freed as f64 / 1e6,
            g.store,
            stats.objects_kept
        );
        // The remote's checkpoints that no kept result continues and nothing wrote lately.
        if let (Some(prefixes), Some(r)) = (&prefixes, store.remote()) {
            let (folders, freed) = crate::checkpoint::collect_remote(r, prefixes, now() - older_than.max(0.0) * 3600.0)?;
            println!("removed {folders} checkpoint folders ({:.1} MB) from {}", freed as f64 / 1e6, g.store);
        }
        return Ok(ExitStatus::Success);
    }
    let _lock = store.lock(|_| {
        eprintln!("waiting for the runs on this store to end (`pipe status` shows what they compute); gc deletes nothing while one runs")
    })?;
    let live = if records {
        let (keys, notes) = live_keys(&store, g.registry, keep_days, skip_invalid).map_err(CliError::GcInvalidPipelines)?;
        for n in notes {
            eprintln!("{n}");
        }
        Some(keys)
    } else {
        None
    };
    // The checkpoint folders of the results kept (computed before their records may go).
    let live_prefixes = live.as_ref().map(|keys| live_prefixes(&store, g.registry, keys));
    let mut stats = store.gc(live.as_ref(), dry_run)?;
    if let Some(prefixes) = &live_prefixes {
        let (lines, freed) = crate::checkpoint::collect(store.root(), prefixes, now() - keep_days.max(0.0) * 86_400.0, dry_run);
        stats.removed.extend(lines);
        stats.bytes_freed += freed;
    }
    if dry_run {
        for line in &stats.removed {
            println!("would remove {line}");
        }
    }
    println!(
        "{} {} objects and {} records ({:.1} MB); kept {} objects",
        if dry_run { "would remove" } else { "removed" },
        stats.objects_removed,
        stats.records_removed,
        stats.bytes_freed as f64 / 1e6,
        stats.objects_kept
    );
    Ok(ExitStatus::Success)
}

/// Whether a YAML file's text declares a top-level `stages:` mapping, as every pipeline file does
/// (a CI file's `stages:` list, e.g. GitLab's, does not count). Judged on the text, so a file
/// that does not parse (a typo in the middle of an edit) still counts.
fn looks_like_pipeline(text: &str) -> bool {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("stages").map(str::trim_start).and_then(|r| r.strip_prefix(':')) else { continue };
        let rest = rest.trim();
        if rest.starts_with('[') {
            return false;
        }
        let next = lines.by_ref().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
        return !next.is_some_and(|l| l.starts_with("- ") || l == "-");
    }
    false
}

/// What `gc --records` keeps: every key a run of the last `keep_days` days used, and every key
/// that a pipeline file in the workspace (`*.yaml` / `*.yml` in any case, a link to one included,
/// at any depth outside hidden folders, the store, `target/` and `node_modules/`) resolves to at its defaults. Returns the keys and a note per file considered.
/// Errors: the files that look like pipelines ([`looks_like_pipeline`]) but do not load, each
/// with its rendered error; gc must not guess what they use. With `skip_invalid` they are
/// noted and skipped instead.
#[allow(clippy::type_complexity)]
fn live_keys(
    store: &Store,
    registry: &Registry,
    keep_days: f64,
    skip_invalid: bool,
) -> Result<(HashSet<String>, Vec<String>), Vec<(PathBuf, String)>> {
    let mut keys = store.run_keys_since(now() - keep_days.max(0.0) * 86_400.0);
    let mut notes = vec![format!("keeping {} results used by runs of the last {keep_days} days", keys.len())];
    let mut broken = Vec::new();
    let ws = workspace();
    let store_dir = std::fs::canonicalize(store.root()).ok();
    let mut stack = vec![(ws.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Folders linked in are not followed (no cycles); hidden ones, build output and
                // the store hold no pipeline a user edits.
                let skip = name.starts_with('.')
                    || name == "target"
                    || name == "node_modules"
                    || std::fs::canonicalize(&path).ok() == store_dir
                    || depth >= 64;
                if !skip {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
            // A file linked in counts as the file it names.
            if !yaml || !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let rel = path.strip_prefix(&ws).unwrap_or(&path).to_path_buf();
            let loaded = config::load(&rel, registry, &[])
                .map_err(|e| render(&e))
                .and_then(|p| GraphBuilder::from_nodes(p.nodes).seal().map_err(|e| e.to_string()));
            let graph = match loaded {
                Ok(graph) => graph,
                Err(error) => {
                    // Bytes that are not UTF-8 or cannot be read are no pipeline anyone edits.
                    let text = std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    if looks_like_pipeline(&text) {
                        if skip_invalid {
                            notes.push(format!("skipping {} (--skip-invalid): it does not load", rel.display()));
                        } else {
                            broken.push((rel, error));
                        }
                    }
                    continue;
                }
            };
            let st = plan::status(&graph, store, &ref_namespace(&rel), &ws);
            let before = keys.len();
            keys.extend(st.into_iter().filter_map(|s| s.key));
            notes.push(format!("keeping the results of {} at its defaults ({} more)", rel.display(), keys.len() - before));
        }
    }
    if broken.is_empty() {
        Ok((keys, notes))
    } else {
        Err(broken)
    }
}
