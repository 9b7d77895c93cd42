//! pipe's engine: an incremental, content-addressed, parallel DAG orchestrator.
//!
//! It knows nothing of machine learning; the compiler enforces it (this crate depends on neither
//! tch nor polars). Stage kinds plug in through [`stage::StageKind`].
//!
//! ```text
//! pipeline.yaml --config--> PipelineSpec --grid--> NodeSpec[] --graph--> Graph (petgraph)
//!   plan: inputs resolved, Fingerprint (hash) -> key -> store lookup: fresh | stale | missing
//!   exec: levels in parallel (rayon) or one Slurm job each; StageKind::run in a work dir
//!   store: outputs moved to objects/<blake3>, a record per key, a ref per pipeline file
//!   remote: the same layout on S3 or a shared folder, cached locally
//!   report: one Finished event per node -> terminal display; Recorder -> run record -> exit code
//!   project: store + workspace + kinds: load a file, run a plan (or pull), run a Slurm job's node
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod command;
pub mod config;
pub mod error;
pub mod exec;
pub mod exit;
pub mod failure;
pub mod graph;
pub mod hash;
pub mod live;
pub mod log;
pub mod plan;
pub mod project;
pub mod remote;
pub mod report;
pub mod slurm;
pub mod stage;
pub mod store;
pub mod targets;
pub mod value;
pub mod worker;

pub use stage::{Registry, StageKind};
pub use value::Value;
