//! `ingest`: locate and verify a dataset, preprocess it, split one class off as normal.
//! Output `dataset` (safetensors: train_x, test_x, test_label, test_class, scale); tensors rather
//! than Parquet because every consumer feeds them straight to libtorch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stages::data::{self, DatasetKind, Preprocess};

use super::ml::to_stage;
use crate::stage::{limits, InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind, Watch, UNKNOWN};
use crate::value::Value;

pub struct Ingest;

fn data_dir(ctx_workspace: Option<&std::path::Path>, p: &Params) -> Option<PathBuf> {
    let d = p.get("data_dir").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    Some(match ctx_workspace {
        Some(w) => w.join(d),
        None => PathBuf::from(d),
    })
}

impl StageKind for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }
    /// 2: a held-out split (`holdout`, `split_seed`) in the output. (The key holds the data's
    /// checksums, not its path and file times.)
    fn version(&self) -> u32 {
        2
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("dataset", ParamType::choice(DatasetKind::NAMES), "mnist, fashion-mnist or cifar10"),
            ParamSpec::required("normal_class", ParamType::Int, "the class treated as normal (0..=9)").at_least(0.0).at_most(9.0),
            ParamSpec::optional("preprocessing", ParamType::choice(Preprocess::NAMES), Value::Str("auto".into()),
                "gcn-l1-minmax (Ruff et al.), unit (pixels / 255), or auto (each dataset's published protocol)"),
            ParamSpec::location("data_dir",
                "folder holding the dataset (default: PIPE_DATA_DIR, ~/.cache/pipe/data, /usr/share/datasets, ../shared/data); not in the key: the data's checksums are"),
            ParamSpec::optional("limit_train", ParamType::Int, Value::Int(0), "keep the first N normal training images (0 = all)")
                .at_least(0.0).at_most(limits::IMAGES),
            ParamSpec::optional("holdout", ParamType::Float, Value::Float(0.1),
                "fraction of the normal training images held out (never trained on) to fit thresholds on, in [0, 0.5]").at_least(0.0).at_most(0.5),
            ParamSpec::optional("split_seed", ParamType::Int, Value::Int(0), "seed of the held-out split"),
            ParamSpec::optional("limit_test", ParamType::Int, Value::Int(0), "keep the first N test images (0 = all)")
                .at_least(0.0).at_most(limits::IMAGES),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![OutputSpec::new("dataset", "dataset.safetensors")])
    }
    /// The data's content identity (`stages::data::identity`: its declared or official checksums),
    /// never its path or file times, so a cache filled on one machine serves another holding the
    /// same data elsewhere. Where the data is absent, [`UNKNOWN`]: the engine then uses the identity
    /// the node's last run recorded, and only a cache miss needs the data.
    fn environment(&self, p: &Params) -> BTreeMap<String, String> {
        let Some(kind) = p.get("dataset").and_then(Value::as_str).and_then(|s| DatasetKind::parse(s).ok()) else {
            return BTreeMap::new();
        };
        let dir = data_dir(std::env::current_dir().ok().as_deref(), p);
        let identity = data::locate(kind, dir.as_deref()).and_then(|found| data::identity(kind, &found));
        BTreeMap::from([("data".to_string(), identity.unwrap_or_else(|_| UNKNOWN.to_string()))])
    }
    fn environment_watch(&self, p: &Params) -> Option<Watch> {
        let Some(kind) = p.get("dataset").and_then(Value::as_str).and_then(|s| DatasetKind::parse(s).ok()) else {
            return Some(Watch::default());
        };
        let dir = data_dir(std::env::current_dir().ok().as_deref(), p);
        let (paths, vars) = data::watch(kind, dir.as_deref());
        Some(Watch { paths, vars })
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let p = &ctx.params;
        let kind = DatasetKind::parse(p.str("dataset")?).map_err(to_stage)?;
        let normal = p.i64("normal_class")?;
        let normal = u8::try_from(normal)
            .ok()
            .filter(|c| *c <= 9)
            .ok_or_else(|| StageError::failed(format!("normal_class {normal} is out of range; {} has classes 0..=9", kind.title())))?;
        let dir = data::locate(kind, data_dir(Some(&ctx.workspace), p).as_deref()).map_err(to_stage)?;
        ctx.log(format!("reading {} from {}", kind.title(), dir.display()));
        let raw = data::load_raw(kind, &dir).map_err(to_stage)?;
        for f in &raw.unverified {
            ctx.log(format!("warning: no checksum known for {f} (not official, no SHA256SUMS); loaded unverified"));
            tracing::warn!(node = %ctx.node, file = %f, "loaded without checksum");
        }
        let pre = Preprocess::parse_for(p.str("preprocessing")?, kind).map_err(to_stage)?;
        let split = data::one_class_with_holdout(
            &raw,
            normal,
            pre,
            p.usize("limit_train")?,
            p.usize("limit_test")?,
            p.f64("holdout")?,
            p.i64("split_seed")? as u64,
        )
        .map_err(to_stage)?;
        ctx.log(format!(
            "normal class {normal}: {} training images, {} held out, {} test images",
            split.train_x.size()[0],
            split.holdout_x.size()[0],
            split.test_x.size()[0]
        ));
        split.save(&ctx.output("dataset")).map_err(to_stage)
    }
}
