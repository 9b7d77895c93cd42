//! `pipe`: an incremental, content-addressed, parallel DAG orchestrator for ML experiment grids.
//!
//! The engine (the `engine` crate: config, graph, hash, store, plan, exec, report) knows nothing of
//! machine learning; the built-in Deep SVDD stage kinds (the `pipe-kinds` crate, on the `stages`
//! library) run in the `pipe-worker` process, which links libtorch; this binary does not.
//! [`args`] is the command line, [`commands`] what each command does.

pub mod args;
pub mod commands;
pub mod compare;
pub mod html_report;
pub mod query;
pub mod runs;

pub use engine::{
    checkpoint, command, config, error, exec, exit, failure, graph, hash, live, log, plan, project, remote, report, slurm, stage, store, targets,
    value, worker,
};
pub use engine::{Registry, StageKind, Value};

/// The kinds the `pipe` binary offers: the engine's `command` in process, every other kind from
/// the stage worker (see [`engine::worker`]), described on first use.
pub fn kinds() -> Registry {
    let mut local = Registry::new();
    local.register(command::CommandStage);
    engine::worker::registry(local, engine::worker::locate())
}
