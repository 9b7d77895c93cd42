//! Deep SVDD anomaly detection (Ruff et al., ICML 2018) as plain typed functions: data loading and
//! preprocessing, LeNet autoencoders, Deep SVDD training (one-class, soft-boundary, hybrid).
//!
//! This crate knows nothing of the `pipe` engine: every function takes paths and typed configs and
//! reports progress through [`Monitor`]. Artifacts are safetensors (tensors) and Parquet (tables).

pub mod data;
pub mod eval;
pub mod explain;
pub mod models;
pub mod plot;
pub mod report;
pub mod rng;
pub mod score;
pub mod table;
pub mod train;
pub mod tsne;

/// Errors of the stage library; messages name the file or field and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Data(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("{0}")]
    Diverged(String),
    #[error("interrupted")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// How long-running functions report progress and learn about cancellation.
pub trait Monitor: Sync {
    /// Called once per epoch (1-based) with the epoch's mean loss.
    fn epoch(&self, _epoch: usize, _epochs: usize, _loss: f64) {}
    /// Called after every optimiser step with the batch's row indices (into the training images)
    /// and the loss at the weights before the step (benches compare it with PyTorch, step by step).
    fn step(&self, _batch: &tch::Tensor, _loss: f64) {}
    /// A line for the node's log.
    fn log(&self, _line: &str) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// A monitor that reports nothing (tests, benchmarks).
pub struct Quiet;
impl Monitor for Quiet {}

/// CPU or CUDA; `auto` picks CUDA when libtorch sees a GPU.
pub fn device(name: &str) -> Result<tch::Device> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        "cuda" => Err(Error::Data(
            "device `cuda` requested but libtorch sees no GPU (this build links the CPU libtorch); use `device: auto` or `cpu`".into(),
        )),
        _ => Ok(tch::Device::cuda_if_available()),
    }
}
