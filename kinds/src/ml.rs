//! Shared glue for the Deep SVDD kinds: param specs, monitor bridge, error mapping.

use std::collections::BTreeMap;

use crate::stage::{limits, ParamSpec, ParamType, Params, RunContext, StageError, Watch};
use crate::value::Value;

pub const DEVICES: &[&str] = &["auto", "cpu", "cuda"];

/// Optimiser params shared by pretrain_ae and train_svdd. Defaults: Ruff's code-README MNIST
/// example (reference setting 2: 150 epochs, lr 1e-4 dropping x0.1 after epoch 50, batch 200,
/// weight decay 0.5e-6; his autoencoder adds weight decay 0.5e-3, which pipelines set).
pub fn train_params(epochs: i64) -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional("epochs", ParamType::Int, Value::Int(epochs), "training epochs").at_least(1.0).at_most(limits::EPOCHS).horizon(),
        ParamSpec::optional("batch_size", ParamType::Int, Value::Int(200), "mini-batch size").at_least(2.0).at_most(limits::BATCH_SIZE),
        ParamSpec::optional("lr", ParamType::Float, Value::Float(1e-4), "Adam learning rate").above(0.0),
        ParamSpec::optional(
            "milestones",
            ParamType::List(Box::new(ParamType::Int)),
            Value::List(vec![Value::Int(50)]),
            "epochs after which lr is multiplied by 0.1",
        ),
        ParamSpec::optional("weight_decay", ParamType::Float, Value::Float(0.5e-6), "Adam L2 weight decay").at_least(0.0),
        ParamSpec::optional("seed", ParamType::Int, Value::Int(0), "seed of weight init and shuffling"),
        ParamSpec::optional("leaky_slope", ParamType::Float, Value::Float(0.01), "leaky ReLU negative slope (code 0.01, paper 0.1)"),
        ParamSpec::optional("device", ParamType::choice(DEVICES), Value::Str("auto".into()), "cpu, cuda, or auto (cuda when present)"),
    ]
}

pub fn train_config(p: &Params) -> Result<stages::train::TrainConfig, StageError> {
    let milestones = match p.get("milestones") {
        Some(Value::List(v)) => v.iter().filter_map(Value::as_i64).map(|m| m.max(0) as usize).collect(),
        _ => Vec::new(),
    };
    Ok(stages::train::TrainConfig {
        epochs: p.usize("epochs")?,
        batch_size: p.usize("batch_size")?,
        lr: p.f64("lr")?,
        milestones,
        weight_decay: p.f64("weight_decay")?,
        seed: p.i64("seed")? as u64,
        device: stages::device(p.str("device")?).map_err(to_stage)?,
        leaky_slope: p.f64("leaky_slope")?,
    })
}

/// The fingerprint fields of every tch-based kind: the libtorch version and the device kind
/// (CPU and CUDA results differ in the last bits; the thread count does not change meaning).
pub fn torch_environment(p: &Params) -> BTreeMap<String, String> {
    let device = match p.get("device").and_then(Value::as_str) {
        Some("cpu") => "cpu",
        Some("cuda") => "cuda",
        _ => {
            if tch::Cuda::is_available() {
                "cuda"
            } else {
                "cpu"
            }
        }
    };
    // The version of the libtorch this binary links (read from its `build-version` by build.rs).
    BTreeMap::from([("libtorch".to_string(), env!("PIPE_LIBTORCH_VERSION").to_string()), ("device".to_string(), device.to_string())])
}

/// What [`torch_environment`] reads besides the params: with `device: auto`, whether an NVIDIA
/// driver is loaded (and which devices are visible).
pub fn torch_watch(p: &Params) -> Option<Watch> {
    Some(match p.get("device").and_then(Value::as_str) {
        Some("cpu") | Some("cuda") => Watch::default(),
        _ => Watch { paths: vec!["/proc/driver/nvidia/version".into()], vars: vec!["CUDA_VISIBLE_DEVICES".into()] },
    })
}

pub fn pe(e: polars::prelude::PolarsError) -> StageError {
    StageError::failed(e.to_string())
}

pub fn to_stage(e: stages::Error) -> StageError {
    match e {
        stages::Error::Cancelled => StageError::Cancelled,
        e => StageError::failed(e.to_string()),
    }
}

/// Bridges the stage library's progress reports to the engine's bar, log and cancel flag.
pub struct Bridge<'a>(pub &'a RunContext);

impl stages::Monitor for Bridge<'_> {
    fn epoch(&self, epoch: usize, epochs: usize, loss: f64) {
        self.0.progress.set_length(epochs as u64);
        self.0.progress.set_position(epoch as u64);
        self.0.progress.set_message(format!("loss {loss:.5}"));
        self.0.progress.metric("loss", epoch as u64, loss);
        self.0.log(format!("epoch {epoch}/{epochs} loss {loss:.6}"));
        tracing::debug!(node = %self.0.node, epoch, loss, "epoch");
    }
    fn log(&self, line: &str) {
        self.0.log(line);
    }
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// How often a training node saves its state at most (seconds; every epoch when 0). Its last
/// epoch is always saved. `PIPE_CHECKPOINT_EVERY_S` sets it: not a param, since it changes no
/// result, only how much a kill can cost.
pub const CHECKPOINT_EVERY_S: f64 = 30.0;

/// The node's checkpoint folder as the training code takes it (`None` when the engine gave none).
/// Where the run may not resume (`pipe run --no-resume`, `-f`), the checkpoints this training
/// would find (at or below its `epochs`) are removed first: it starts over, and writes them anew.
pub fn checkpoints(ctx: &RunContext, epochs: usize) -> Result<Option<stages::train::Checkpoints>, StageError> {
    let Some(c) = &ctx.checkpoints else { return Ok(None) };
    if !c.resume {
        for s in crate::checkpoint::saved(&c.dir).into_iter().filter(|s| s.epoch as usize <= epochs) {
            std::fs::remove_file(&s.path).map_err(|e| StageError::io("cannot remove a checkpoint to start over", e))?;
            let _ = std::fs::remove_file(stages::train::checkpoint::sidecar(&s.path));
        }
        ctx.log(format!("starting over (--no-resume): not resuming from {}", c.dir.display()));
    }
    let every = match std::env::var("PIPE_CHECKPOINT_EVERY_S") {
        Err(_) => CHECKPOINT_EVERY_S,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => s,
            _ => {
                ctx.log(format!(
                    "warning: PIPE_CHECKPOINT_EVERY_S={v:?} is not a number of seconds >= 0; saving at most every {CHECKPOINT_EVERY_S} s"
                ));
                CHECKPOINT_EVERY_S
            }
        },
    };
    let every = std::time::Duration::from_secs_f64(every);
    Ok(Some(stages::train::Checkpoints::new(&c.dir).with_min_interval(every)))
}

/// Applies the node's CPU thread budget to libtorch's intra-op pool.
pub fn set_threads(ctx: &RunContext) {
    tch::set_num_threads(ctx.threads.max(1) as i32);
}
