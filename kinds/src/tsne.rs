//! `tsne`: Barnes-Hut t-SNE of the TEST latent codes (a seeded subsample of `max_points`), for the
//! latent-space plots. Output `embedding` (Parquet: index, label, class, x, y).

use polars::prelude::*;
use stages::eval::ScoreTable;
use stages::rng::Rng;
use stages::tsne::{embed, TsneConfig};

use super::ml::to_stage;
use crate::stage::{limits, InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct Tsne;

impl StageKind for Tsne {
    fn name(&self) -> &'static str {
        "tsne"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("perplexity", ParamType::Float, Value::Float(30.0), "t-SNE perplexity").above(0.0),
            ParamSpec::optional("theta", ParamType::Float, Value::Float(0.5), "Barnes-Hut accuracy (0 = exact)").at_least(0.0),
            ParamSpec::optional("epochs", ParamType::Int, Value::Int(1000), "optimisation iterations").at_least(1.0).at_most(limits::ITERATIONS),
            ParamSpec::optional("max_points", ParamType::Int, Value::Int(2500), "test points embedded (seeded subsample; 0 = all)")
                .at_least(0.0)
                .at_most(limits::IMAGES),
            ParamSpec::optional("seed", ParamType::Int, Value::Int(0), "subsample and initialisation seed"),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("scores", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("embedding", "tsne.parquet")])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let p = &ctx.params;
        let table = ScoreTable::read(ctx.input("scores")?).map_err(to_stage)?;
        let mut rows = table.rows("test");
        let seed = p.i64("seed")? as u64;
        let max = p.usize("max_points")?;
        if max > 0 && rows.len() > max {
            let perm = Rng::new(seed).permutation(rows.len());
            let mut keep: Vec<usize> = perm[..max].iter().map(|&i| rows[i as usize]).collect();
            keep.sort_unstable();
            rows = keep;
        }
        let z = table.z_rows(&rows).contiguous();
        let d = z.size()[1] as usize;
        let flat = Vec::<f32>::try_from(z.flatten(0, -1)).map_err(|e| StageError::failed(e.to_string()))?;
        let cfg = TsneConfig { perplexity: p.f64("perplexity")? as f32, theta: p.f64("theta")? as f32, epochs: p.usize("epochs")?, seed };
        ctx.log(format!("t-SNE of {} test codes ({d}-d)", rows.len()));
        // The node's own thread budget (not the process-wide pool): bhtsne's parallel sums follow
        // rayon's work stealing, so the embedding is bit-reproducible with one thread, the default
        // when a run has as many jobs as CPUs (and on Slurm).
        let pool = rayon::ThreadPoolBuilder::new().num_threads(ctx.threads.max(1)).build().map_err(|e| StageError::failed(e.to_string()))?;
        let emb = pool.install(|| embed(&flat, d, &cfg)).map_err(to_stage)?;
        let mut df = DataFrame::new(vec![
            Column::new("index".into(), ScoreTable::pick(&table.index, &rows)),
            Column::new("label".into(), ScoreTable::pick(&table.label, &rows)),
            Column::new("class".into(), ScoreTable::pick(&table.class, &rows)),
            Column::new("x".into(), emb.iter().map(|e| e[0]).collect::<Vec<f32>>()),
            Column::new("y".into(), emb.iter().map(|e| e[1]).collect::<Vec<f32>>()),
        ])
        .map_err(|e| StageError::failed(e.to_string()))?;
        stages::table::write_parquet(&mut df, &ctx.output("embedding")).map_err(to_stage)
    }
}
