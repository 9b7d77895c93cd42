//! The built-in stage kinds: adapters from the engine's `StageKind` to plain stage functions of the
//! Deep SVDD library (`stages`). One file per kind; `ml` holds the glue the Deep SVDD kinds share.
//!
//! They run in `pipe-worker` (this crate's binary), which links libtorch; the `pipe` binary does
//! not, and reaches them through `engine::worker`. The generic `command` kind lives in the engine.

pub mod concat;
pub mod data;
pub mod evaluate;
pub mod explain;
pub mod fit_threshold;
pub mod ingest;
mod ml;
pub mod plot;
pub mod pretrain_ae;
pub mod report;
pub mod train_svdd;
pub mod tsne;

pub use engine::command;
pub(crate) use engine::{checkpoint, stage, value};

use engine::stage::Registry;

/// Every kind `pipe` ships with, all in this process (the worker serves these; tests use them
/// in process).
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    r.register(command::CommandStage);
    r.register(concat::Concat);
    r.register(evaluate::Evaluate);
    r.register(explain::Explain);
    r.register(fit_threshold::FitThreshold);
    r.register(plot::Plot);
    r.register(report::Report);
    r.register(tsne::Tsne);
    r.register(ingest::Ingest);
    r.register(pretrain_ae::PretrainAe);
    r.register(train_svdd::TrainSvdd);
    r
}
