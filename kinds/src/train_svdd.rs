//! `train_svdd`: Deep SVDD (one-class or soft-boundary; hybrid when mu2 > 0), initialised from the
//! pretrained autoencoder. Outputs `model` (safetensors with `svdd.c`, `svdd.radius`), `history`
//! and `scores` (Parquet: per-image latent code, distance and score for train and test).

use stages::data::OneClass;
use stages::models::svdd::Objective;
use stages::train::svdd::{self, SvddConfig};

use super::ml::{self, to_stage, Bridge};
use crate::stage::{limits, InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct TrainSvdd;

impl StageKind for TrainSvdd {
    fn name(&self) -> &'static str {
        "train_svdd"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut p = vec![
            ParamSpec::optional(
                "objective",
                ParamType::choice(&["one-class", "soft-boundary"]),
                Value::Str("one-class".into()),
                "Deep SVDD objective",
            ),
            ParamSpec::optional("nu", ParamType::Float, Value::Float(0.1), "soft-boundary: fraction of training points allowed outside R")
                .above(0.0)
                .at_most(1.0),
            ParamSpec::optional("mu1", ParamType::Float, Value::Float(1.0), "weight of the Deep SVDD term").above(0.0),
            ParamSpec::optional(
                "mu2",
                ParamType::Float,
                Value::Float(0.0),
                "weight of the reconstruction term; > 0 trains encoder and decoder jointly (hybrid)",
            )
            .at_least(0.0),
            ParamSpec::optional("warm_up_epochs", ParamType::Int, Value::Int(10), "soft-boundary: epochs before R is updated")
                .at_least(0.0)
                .at_most(limits::EPOCHS),
            ParamSpec::optional("center_eps", ParamType::Float, Value::Float(0.1), "centre coordinates nearer 0 are set to +-eps"),
        ];
        p.extend(ml::train_params(150));
        p
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("data", true), ("ae", false)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![
            OutputSpec::new("model", "svdd.safetensors"),
            OutputSpec::new("history", "history.parquet"),
            OutputSpec::new("scores", "scores.parquet"),
        ])
    }
    fn environment(&self, p: &Params) -> std::collections::BTreeMap<String, String> {
        ml::torch_environment(p)
    }
    fn environment_watch(&self, p: &Params) -> Option<crate::stage::Watch> {
        ml::torch_watch(p)
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        ml::set_threads(ctx);
        let p = &ctx.params;
        let objective = match p.str("objective")? {
            "soft-boundary" => Objective::SoftBoundary { nu: p.f64("nu")? },
            _ => Objective::OneClass,
        };
        let cfg = SvddConfig {
            train: ml::train_config(p)?,
            objective,
            mu1: p.f64("mu1")?,
            mu2: p.f64("mu2")?,
            warm_up_epochs: p.usize("warm_up_epochs")?,
            center_eps: p.f64("center_eps")?,
        };
        let data = OneClass::load(ctx.input("data")?).map_err(to_stage)?;
        let ae = ctx.input_all("ae").first().map(|p| p.as_path());
        // Resumes from the node's checkpoint folder where it can (the monitor logs "resumed from
        // epoch k of E"); saves its state there as it trains.
        let checkpoints = ml::checkpoints(ctx, cfg.train.epochs)?;
        let (model, history, _resumed) = svdd::train_checkpointed(&data, ae, &cfg, checkpoints.as_ref(), &Bridge(ctx)).map_err(to_stage)?;
        model.save(&ctx.output("model")).map_err(to_stage)?;
        let mut h = history.to_frame().map_err(to_stage)?;
        stages::table::write_parquet(&mut h, &ctx.output("history")).map_err(to_stage)?;
        let mut scores = stages::score::score_table(&model, &data, cfg.train.batch_size as i64).map_err(to_stage)?;
        stages::table::write_parquet(&mut scores, &ctx.output("scores")).map_err(to_stage)
    }
}
