//! `pipe run`: the command line's side of [`Project::run`] (every node that is not fresh, in
//! dependency order, independent nodes in parallel, here or as Slurm jobs): targets, the Slurm
//! runner, the display, the summary and the pipeline's declared report. `pipe pull` is such a run
//! that only restores.

use std::path::Path;
use std::time::Duration;

use crate::args::{ExecutorKind, PipelineArgs, RunArgs};
use crate::commands::common::{absolute, is_url, load, open_store, select, workspace};
use crate::commands::report::write_html_report;
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::exec::{Foreign, RunOptions};
use crate::graph::GraphBuilder;
use crate::plan::Freshness;
use crate::project::{Finished, Periodic, Plan, Project};
use crate::report::Terminal;
use crate::store::{RunState, RunStatus};

/// What `pipe run` (and `pipe pull`) runs, and how: resolved once from the command line.
pub(crate) struct RunSettings {
    /// The pipeline file and its `--set` overrides.
    pub p: PipelineArgs,
    /// Run only these (with their upstream); empty: everything.
    pub targets: Vec<String>,
    /// How to run.
    pub run: RunArgs,
    /// `pipe pull`: restore cached results only, compute nothing.
    pub pull_only: bool,
}

/// `pipe run`.
pub(crate) fn run(g: &Ctx<'_>, settings: RunSettings) -> Result<ExitStatus, CliError> {
    let RunSettings { p, targets, run, pull_only } = settings;
    let RunArgs {
        force,
        no_resume,
        downstream,
        jobs,
        threads,
        fail_fast,
        dry_run,
        overwrite,
        verbose,
        json,
        executor,
        partition,
        sbatch_args,
        requeue,
    } = run;
    let (pipeline, graph) = load(&p, g.registry)?;
    let (graph, rerun) = if targets.is_empty() {
        let rerun = if force { pipeline.nodes.iter().map(|n| n.id.clone()).collect() } else { Vec::new() };
        (graph, rerun)
    } else {
        let (g, hit) = select(&pipeline.nodes, &targets, downstream)?;
        (g, if force { hit } else { Vec::new() })
    };
    let rerun: std::collections::HashSet<String> = rerun.into_iter().collect();
    let project = Project::new(open_store(g.store, g.cache)?, g.registry, workspace(), g.cancel.clone());
    let store = project.store();
    if dry_run {
        let st = project.status(&graph, p.path());
        let todo: Vec<_> = st.iter().filter(|s| s.state != Freshness::Fresh || rerun.contains(&s.node)).collect();
        for s in &todo {
            let why = if s.state == Freshness::Fresh { "forced (-f); its result is cached".to_string() } else { s.reasons.join("; ") };
            println!("would run {}  ({why})", s.node);
        }
        println!("{} of {} nodes would run", todo.len(), st.len());
        return Ok(ExitStatus::Success);
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let slurm = match executor {
        ExecutorKind::Local if requeue.is_some() => return Err(CliError::RequeueNeedsSlurm),
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => {
            let exe = std::env::current_exe().map_err(CliError::NoExecutable)?;
            let store_arg = if is_url(g.store) { g.store.to_string() } else { absolute(Path::new(g.store)).display().to_string() };
            let mut s =
                crate::slurm::Slurm::new(exe, p.path().to_path_buf(), p.set.clone(), store_arg, absolute(store.root()), partition, sbatch_args);
            s.requeue = requeue.unwrap_or(0);
            s.check().map_err(CliError::Slurm)?;
            Some(s)
        }
    };
    // Slurm: up to 64 jobs in flight, one CPU each unless --threads says otherwise.
    let jobs = jobs.unwrap_or(if slurm.is_some() { 64 } else { cpus }).max(1);
    let threads = threads.unwrap_or(if slurm.is_some() { 1 } else { (cpus / jobs).max(1) });
    let terminal = Terminal::new(verbose);
    let runner: &dyn crate::exec::NodeRunner = match &slurm {
        Some(s) => s,
        None => &crate::exec::Local,
    };
    // The whole pipeline's graph, for its report (also after a run narrowed to targets); sealed
    // only where there is a report (10,000 nodes take a tenth of a second).
    let full = match &pipeline.report {
        Some(_) => Some(GraphBuilder::from_nodes(pipeline.nodes.clone()).seal().map_err(CliError::Cycle)?),
        None => None,
    };
    // The declared report is rewritten while the run goes, so it shows the running nodes' curves
    // so far and what has finished; the last write, below, is the one said. What cannot be
    // written meanwhile is said by that last write.
    let rewrite = |out: &Path, full: &crate::graph::Graph| {
        let _ = write_html_report(&pipeline, full, store, p.path(), out, overwrite, Foreign::Backup);
    };
    let rewrite = pipeline.report.as_deref().zip(full.as_ref()).map(|(out, full)| move || rewrite(out, full));
    let periodic = rewrite.as_ref().map(|call| Periodic { every: report_every(), call });
    let plan = Plan { pipeline: &pipeline, graph: &graph, file: p.path(), overrides: &p.set };
    let options = RunOptions { jobs, threads, fail_fast, overwrite, pull_only, rerun, no_resume, claim_as: None };
    let on_wait = |holder: &str| eprintln!("waiting for `pipe gc` on store {} ({holder})", store.describe());
    let finished = project.run(&plan, options, runner, &terminal, on_wait, periodic);
    if let Some(s) = &slurm {
        s.cancel_all();
    }
    // Nothing is forgotten here: a run that leaves nodes out (`--set`, another file) keeps
    // their refs; `pipe gc` decides what is live.
    terminal.finish();
    let Finished { record, path, tally, status } = finished?;
    if json {
        println!("{}", serde_json::to_string_pretty(&record).expect("run records serialise"));
    }
    eprintln!("{tally} in {:.1}s; run record {}", record.duration_s, path.display());
    if let (Some(out), Some(full)) = (&pipeline.report, &full) {
        let said = write_html_report(&pipeline, full, store, p.path(), out, overwrite, Foreign::Backup)
            .map_err(|error| CliError::ReportAfterRun { error, run: status.into() })?;
        eprintln!("{said}");
    }
    if status == RunStatus::Failed {
        for n in record.nodes.iter().filter(|n| n.state == RunState::Failed) {
            let first = n.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
            eprintln!("failed: {}: {first}", n.node);
        }
    }
    Ok(status.into())
}

/// How often `pipe run` rewrites the pipeline's declared report while it runs: every 20 s, or
/// `PIPE_REPORT_EVERY_S` seconds (at least 0.1).
fn report_every() -> Duration {
    let secs = std::env::var("PIPE_REPORT_EVERY_S").ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.1);
    Duration::from_secs_f64(secs.unwrap_or(20.0))
}
