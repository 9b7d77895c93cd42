//! `pipe report`: ONE self-contained HTML report of a pipeline (also what `pipe run` writes to a
//! pipeline's declared `report:`).

use std::path::{Path, PathBuf};

use crate::args::PipelineArgs;
use crate::commands::common::{absolute, load, open_store, ref_namespace, rfc3339, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::config::Pipeline;
use crate::exec::{Foreign, PublishError};
use crate::graph::Graph;
use crate::plan::{self, Freshness};
use crate::store::{now, RunRecord, Store};

/// `pipe report`.
pub(crate) fn report(g: &Ctx<'_>, p: PipelineArgs, output: Option<PathBuf>, overwrite: bool) -> Result<ExitStatus, CliError> {
    let (pipeline, graph) = load(&p, g.registry)?;
    let store = open_store(g.store, g.cache)?;
    let default = crate::html_report::default_output(&pipeline.name);
    // `-o DIR` (an existing folder) writes NAME-report.html into it, as `cp FILE DIR` would.
    let out = match output {
        Some(o) if o.is_dir() => o.join(default),
        Some(o) => o,
        None => default,
    };
    // Never over a file a stage publishes (its next run would find it edited by hand).
    let norm = |p: &Path| -> PathBuf { absolute(p).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect() };
    let target = norm(&out);
    if let Some(n) = pipeline.nodes.iter().find(|n| n.publish.iter().any(|(_, d)| norm(d) == target)) {
        return Err(CliError::ReportOverPublished { path: out.clone(), node: n.id.clone() });
    }
    let said = write_html_report(&pipeline, &graph, &store, p.path(), &out, overwrite, Foreign::Refuse).map_err(CliError::Report)?;
    println!("{said}");
    Ok(ExitStatus::Success)
}

/// Writes the HTML report of the whole pipeline to `out` (relative to the workspace); returns the
/// line to print, or why nothing was written (naming the file and the way out).
/// `foreign`: what to do with a file pipe did not write at `out` (`pipe report -o` refuses it, a
/// pipeline's `report:` backs it up, as a published output).
pub(crate) fn write_html_report(
    pipeline: &Pipeline,
    graph: &Graph,
    store: &Store,
    file: &Path,
    out: &Path,
    overwrite: bool,
    foreign: Foreign,
) -> Result<String, PublishError> {
    let ns = ref_namespace(file);
    let status = plan::status(graph, store, &ns, &workspace());
    let runs: Vec<RunRecord> = store.runs().into_iter().filter(|r| ref_namespace(Path::new(&r.file)) == ns).collect();
    let generated = rfc3339(now());
    let html = crate::html_report::render(&crate::html_report::Inputs {
        name: &pipeline.name,
        file,
        graph,
        status: &status,
        store,
        namespace: &ns,
        runs: &runs,
        generated: &generated,
        compare: pipeline.compare.as_ref(),
    });
    let dest = absolute(out);
    let hash = blake3::hash(html.as_bytes()).to_hex().to_string();
    let kept = crate::exec::publish_file(store, out, &dest, &hash, || Ok(html.clone().into_bytes()), overwrite, foreign)?;
    if let Some(kept) = kept {
        eprintln!("warning: {} was not written by pipe; the previous file is kept at {}", out.display(), kept.display());
    }
    let fresh = status.iter().filter(|s| s.state == Freshness::Fresh).count();
    Ok(format!("wrote {} ({} KiB; {fresh} of {} nodes fresh)", out.display(), html.len() / 1024, status.len()))
}
