//! What the commands share: the pipeline file (found, loaded, narrowed to targets), the store
//! (opened from `--store` / `--cache`), the workspace and the refs' namespace.

use std::path::{Path, PathBuf};

use crate::args::{PipelineArgs, DEFAULT_FILE};
use crate::commands::CliError;
use crate::config::{NodeSpec, Pipeline};
use crate::graph::{Graph, GraphBuilder};
use crate::stage::Registry;
use crate::store::Store;

/// The `--set` overrides as (STAGE.PARAM, VALUE) pairs.
fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>, CliError> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| CliError::BadSet(format!("--set `{s}`: expected STAGE.PARAM=VALUE, e.g. --set train.mu2=0.5")))
        })
        .collect()
}

/// Fills in the pipeline file when none is given: `pipe.yaml` here, else the file of the store's
/// last run. A first word that is no file but reads as a target (`pipe run train`) is a target,
/// even where a folder of that name exists (quick.yaml's stage `results` beside `results/`): a
/// folder is never a pipeline file. Every word after the file is a target.
pub(crate) fn resolve_file(p: &mut PipelineArgs, targets: &mut Vec<String>, store: &str, cache: &Path) -> Result<(), CliError> {
    if let Some(f) = &p.file {
        let looks_like_file = f.is_file() || f.extension().is_some_and(|e| e == "yaml" || e == "yml") || (!f.is_dir() && f.components().count() > 1);
        if looks_like_file {
            return Ok(());
        }
        targets.insert(0, f.to_string_lossy().to_string());
        p.file = None;
    }
    if Path::new(DEFAULT_FILE).is_file() {
        p.file = Some(PathBuf::from(DEFAULT_FILE));
        return Ok(());
    }
    let dir = if is_url(store) { cache } else { Path::new(store) };
    let last = Store::latest_run_in(dir).map(|r| PathBuf::from(r.file)).filter(|f| f.is_file());
    match last {
        Some(f) => {
            eprintln!("(pipeline file: {}, from the last run)", f.display());
            p.file = Some(f);
            Ok(())
        }
        None => Err(CliError::NoPipelineFile { store: dir.to_path_buf() }),
    }
}

/// The graph narrowed to `targets` (with their upstream; `downstream`: and their dependents), and
/// the ids of the nodes the targets matched.
pub(crate) fn select(nodes: &[NodeSpec], targets: &[String], downstream: bool) -> Result<(Graph, Vec<String>), CliError> {
    let hit = crate::targets::matching(nodes, targets).map_err(CliError::Targets)?;
    let ids = hit.iter().map(|&i| nodes[i].id.clone()).collect();
    let graph = GraphBuilder::from_nodes(crate::targets::select(nodes, &hit, downstream)).seal().map_err(CliError::Cycle)?;
    Ok((graph, ids))
}

/// The one node `targets` name: an exact node id first (ids may hold characters a pattern reads
/// differently), else the patterns' single match; several matches are listed (exit 2).
pub(crate) fn one_node(nodes: &[NodeSpec], graph: &Graph, targets: &[String]) -> Result<String, CliError> {
    if let ([t], Some(_)) = (targets, targets.first().and_then(|t| graph.find(t))) {
        return Ok(t.clone());
    }
    let hit = crate::targets::matching(nodes, targets).map_err(CliError::Targets)?;
    if let [one] = hit.as_slice() {
        return Ok(nodes[*one].id.clone());
    }
    Err(CliError::Ambiguous { targets: targets.join(" "), nodes: hit.iter().map(|&i| nodes[i].id.clone()).collect() })
}

/// The pipeline file with its `--set` overrides, and its sealed graph.
pub(crate) fn load(p: &PipelineArgs, registry: &Registry) -> Result<(Pipeline, Graph), CliError> {
    let sets = parse_sets(&p.set)?;
    let loaded = crate::project::load(registry, &workspace(), p.path(), &sets)?;
    Ok((loaded.pipeline, loaded.graph))
}

/// Where a pipeline's refs live in the store: [`crate::project::namespace`] of the file in this
/// workspace.
pub fn ref_namespace(file: &Path) -> String {
    crate::project::namespace(&workspace(), file)
}

pub(crate) use crate::project::rfc3339;

pub(crate) fn is_url(store: &str) -> bool {
    store.contains("://")
}

/// `--store file:/x` or `s3:/bucket`: a URL missing a slash, which would otherwise become a local
/// folder named `file:`. A scheme is a letter, then letters, digits, `+`, `-` or `.`, then `:`.
fn mistyped_url(store: &str) -> Option<&str> {
    let (scheme, _) = store.split_once(':')?;
    let looks = !store.contains("://")
        && scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    looks.then_some(scheme)
}

/// The store named by --store (and --cache in front of a remote one).
pub(crate) fn open_store(cli_store: &str, cache: &Path) -> Result<Store, CliError> {
    if let Some(scheme) = mistyped_url(cli_store) {
        return Err(CliError::MistypedStore { store: cli_store.to_string(), scheme: scheme.to_string() });
    }
    let dir = if is_url(cli_store) { cache } else { Path::new(cli_store) };
    let store = Store::open(dir).map_err(CliError::StoreUnopenable)?;
    if !is_url(cli_store) {
        return Ok(store);
    }
    let remote = crate::remote::Remote::open(cli_store)?;
    Ok(store.with_remote(remote))
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        workspace().join(p)
    }
}

pub(crate) fn workspace() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}
