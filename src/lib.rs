//! `pipe`: an incremental, content-addressed, parallel DAG orchestrator for ML experiment grids.
//!
//! The engine (the `engine` crate: config, graph, hash, store, plan, exec, report) knows nothing of
//! machine learning; the built-in stage kinds live in [`kinds`], built on the Deep SVDD library
//! (the `stages` crate); [`cli`] is the command line.

pub mod cli;
pub mod kinds;
pub mod query;
pub mod runs;

pub use engine::{config, exec, exit, graph, hash, plan, remote, report, slurm, stage, store, targets, value};
pub use engine::{Registry, StageKind, Value};
