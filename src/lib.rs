//! `pipe`: an incremental, content-addressed, parallel DAG orchestrator for ML experiment grids.
//!
//! The engine (config, graph, hash, store, plan, exec, report) knows nothing of machine learning;
//! stage kinds plug in through [`stage::StageKind`]; the built-in kinds live in [`kinds`].

pub mod cli;
pub mod config;
pub mod exec;
pub mod exit;
pub mod graph;
pub mod hash;
pub mod kinds;
pub mod plan;
pub mod query;
pub mod remote;
pub mod report;
pub mod slurm;
pub mod stage;
pub mod store;
pub mod value;

pub use stage::{Registry, StageKind};
pub use value::Value;
