//! The built-in stage kinds: adapters from the engine's `StageKind` to plain stage functions.
//! One file per kind; `ml` holds the glue the Deep SVDD kinds share.

pub mod command;
pub mod concat;
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

use crate::stage::Registry;

/// Every kind `pipe` ships with.
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
