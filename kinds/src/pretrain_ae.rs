//! `pretrain_ae`: autoencoder pretraining. Outputs `model` (safetensors, names = module paths)
//! and `history` (Parquet: epoch, loss, lr, seconds).

use stages::data::OneClass;

use super::ml::{self, to_stage, Bridge};
use crate::stage::{InputDecl, OutputSpec, ParamSpec, Params, RunContext, StageError, StageKind};

pub struct PretrainAe;

impl StageKind for PretrainAe {
    fn name(&self) -> &'static str {
        "pretrain_ae"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        ml::train_params(150)
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("data", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("model", "ae.safetensors"), OutputSpec::new("history", "history.parquet")])
    }
    fn environment(&self, p: &Params) -> std::collections::BTreeMap<String, String> {
        ml::torch_environment(p)
    }
    fn environment_watch(&self, p: &Params) -> Option<crate::stage::Watch> {
        ml::torch_watch(p)
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        ml::set_threads(ctx);
        let cfg = ml::train_config(&ctx.params)?;
        let data = OneClass::load(ctx.input("data")?).map_err(to_stage)?;
        // Resumes from the node's checkpoint folder where it can (the monitor logs "resumed from
        // epoch k of E"); saves its state there as it trains.
        let checkpoints = ml::checkpoints(ctx, cfg.epochs)?;
        let (ae, history, _resumed) =
            stages::train::autoencoder::pretrain_checkpointed(&data, &cfg, checkpoints.as_ref(), &Bridge(ctx)).map_err(to_stage)?;
        ae.save(&ctx.output("model")).map_err(to_stage)?;
        let mut df = history.to_frame().map_err(to_stage)?;
        stages::table::write_parquet(&mut df, &ctx.output("history")).map_err(to_stage)
    }
}
