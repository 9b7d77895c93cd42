//! `explain`: Grad-CAM (default: its HiResCAM variant) of the anomaly score for (a) a FIXED set of anomalous test images, the same
//! under every model (the first image of each anomalous class), and (b) the k most and k least
//! anomalous test images under this model. Outputs `heatmaps` (safetensors: indices, images,
//! heatmaps, scores), `overlay` (PNG grid, with the fixed images' maps under a randomised network
//! beneath them) and `quality` (one row per explained image: its deletion AUC under the map and
//! under a random pixel order, Petsiuk et al. 2018, and the Spearman correlation of its map with
//! the randomised network's, Adebayo et al. 2018: `stages::explain`). With the threshold's `fit`,
//! each shown image's score says which side of the model's threshold it lies (flagged or not).

use std::collections::BTreeMap;

use polars::prelude::*;
use stages::data::OneClass;
use stages::eval::metrics::{flagged, versus_threshold};
use stages::eval::ScoreTable;
use stages::explain::{deletion_auc, deletion_curve, grad_cam, randomised, spearman, CamMethod, Scorer};
use stages::models::svdd::SvddModel;
use stages::models::Arch;
use stages::plot::{image_grid, png, Cell};
use tch::{Kind, Tensor};

use super::ml::{self, pe, to_stage};
use crate::stage::{limits, InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct Explain;

fn te(e: tch::TchError) -> StageError {
    StageError::failed(e.to_string())
}

/// Image `x` [C, H, W] with its heatmap and a caption as a plot cell.
pub fn cell(x: &Tensor, heat: Option<&Tensor>, caption: Option<String>) -> Result<Cell, StageError> {
    let s = x.size();
    // Show images on their own min-max range (preprocessed pixels are not in [0, 1]).
    let lo = x.min().double_value(&[]);
    let hi = x.max().double_value(&[]).max(lo + 1e-6);
    let pixels = Vec::<f32>::try_from(((x - lo) / (hi - lo)).to_kind(Kind::Float).flatten(0, -1)).map_err(te)?;
    let heat = heat.map(|h| Vec::<f32>::try_from(h.to_kind(Kind::Float).flatten(0, -1))).transpose().map_err(te)?;
    Ok(Cell { channels: s[0] as usize, h: s[1] as usize, w: s[2] as usize, pixels, heat, caption })
}

impl StageKind for Explain {
    fn name(&self) -> &'static str {
        "explain"
    }
    /// 2: activations after the last conv's BatchNorm; HiResCAM by default.
    /// 3: the overlay's title no longer names the node (not in the key). 5: the overlay in
    /// viridis above a floor, sampled bilinearly at display resolution, with a colour bar.
    /// 6: each image's true class (`*_class`) stored and, with its score, printed under it.
    /// 7: the overlay in viridis as matplotlib defines it (colorous). 8: the `quality` table
    /// (deletion AUC, randomisation check) and the randomised network's maps in the overlay.
    /// 9: each shown image's score is the `scores` input's (the threshold's scale) and says which
    /// side of the fitted threshold it lies (`threshold` stored; `threshold`, `flagged` columns).
    fn version(&self) -> u32 {
        9
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional("k", ParamType::Int, Value::Int(6), "most / least anomalous test images to explain")
                .at_least(0.0)
                .at_most(limits::IMAGES_SHOWN),
            ParamSpec::optional("fixed", ParamType::Int, Value::Int(6), "fixed anomalous images (first of each anomalous class)")
                .at_least(0.0)
                .at_most(limits::IMAGES_SHOWN),
            ParamSpec::optional(
                "cam",
                ParamType::choice(&["hirescam", "gradcam"]),
                Value::Str("hirescam".into()),
                "hirescam (gradient x activation per location) or gradcam (channel-averaged gradient weights)",
            ),
            ParamSpec::optional("device", ParamType::choice(ml::DEVICES), Value::Str("auto".into()), "cpu, cuda or auto"),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("model", true), ("data", true), ("scores", true), ("fit", false)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![
            OutputSpec::new("heatmaps", "gradcam.safetensors"),
            OutputSpec::new("overlay", "gradcam.png"),
            OutputSpec::new("quality", "quality.parquet"),
        ])
    }
    fn environment(&self, p: &Params) -> BTreeMap<String, String> {
        ml::torch_environment(p)
    }
    fn environment_watch(&self, p: &Params) -> Option<crate::stage::Watch> {
        ml::torch_watch(p)
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        ml::set_threads(ctx);
        let p = &ctx.params;
        let device = stages::device(p.str("device")?).map_err(to_stage)?;
        let method = if p.str("cam")? == "gradcam" { CamMethod::GradCam } else { CamMethod::HiResCam };
        let data = OneClass::load(ctx.input("data")?).map_err(to_stage)?;
        let arch = Arch::for_channels(data.test_x.size()[1]);
        let model = SvddModel::load(ctx.input("model")?, arch, device).map_err(to_stage)?;
        let fit = match ctx.input_all("fit").first() {
            Some(path) => Tensor::read_safetensors(path).map_err(te)?.into_iter().collect::<BTreeMap<_, _>>(),
            None => BTreeMap::new(),
        };
        // The model's threshold on its method's scores (the `scores` input's scale), where given.
        let threshold = fit.get("threshold").map(|t| t.double_value(&[0]));
        let scorer = match (fit.get("mean"), fit.get("precision")) {
            (Some(mean), Some(precision)) => Scorer::Mahalanobis { mean, precision },
            _ => Scorer::Distance,
        };
        let table = ScoreTable::read(ctx.input("scores")?).map_err(to_stage)?;
        let test = table.rows("test");
        // Each shown image's score as the threshold sees it (Grad-CAM's own is the distance
        // before a soft boundary's R^2 is taken off).
        let table_score: BTreeMap<i64, f64> = test.iter().map(|&r| (table.index[r], table.score[r])).collect();
        let mut order: Vec<usize> = test.clone();
        order.sort_by(|&a, &b| table.score[b].total_cmp(&table.score[a]));
        let k = p.usize("k")?.min(order.len() / 2).max(1);
        let top: Vec<i64> = order[..k].iter().map(|&r| table.index[r]).collect();
        let bottom: Vec<i64> = order[order.len() - k..].iter().rev().map(|&r| table.index[r]).collect();
        let classes = Vec::<i64>::try_from(&data.test_class).map_err(te)?;
        let labels = Vec::<i64>::try_from(&data.test_label).map_err(te)?;
        let mut fixed: Vec<i64> = Vec::new();
        for class in 0..10 {
            if let Some(i) = (0..labels.len()).find(|&i| labels[i] == 1 && classes[i] == class) {
                fixed.push(i as i64);
            }
        }
        fixed.truncate(p.usize("fixed")?);
        let mut named: Vec<(String, Tensor)> = Vec::new();
        let mut rows = Vec::new();
        // The sanity check's network (seeded: the same for every model of an architecture), the
        // deletion baseline (the normal training images' mean) and what each map scores.
        let random = randomised(&model, &data.train_x, 0).map_err(to_stage)?;
        let baseline = data.train_x.mean_dim(0, false, Kind::Float);
        let (h, w) = (data.test_x.size()[2], data.test_x.size()[3]);
        let mut q = Quality::default();
        let mut random_row = Vec::new();
        for (name, idx) in [("fixed", &fixed), ("top", &top), ("bottom", &bottom)] {
            let index = Tensor::from_slice(idx);
            let images = data.test_x.index_select(0, &index);
            let (heat, _) = grad_cam(&model, &images, &scorer, method).map_err(to_stage)?;
            let (heat_random, _) = grad_cam(&random, &images, &Scorer::Distance, method).map_err(to_stage)?;
            for i in 0..idx.len() {
                let map = Vec::<f64>::try_from(heat.get(i as i64).to_kind(Kind::Double).flatten(0, -1)).map_err(te)?;
                let map_random = Vec::<f64>::try_from(heat_random.get(i as i64).to_kind(Kind::Double).flatten(0, -1)).map_err(te)?;
                let mut salient: Vec<i64> = (0..(h * w)).collect();
                salient.sort_by(|&a, &b| map[b as usize].total_cmp(&map[a as usize]));
                let shuffled = stages::rng::Rng::new(idx[i] as u64).permutation((h * w) as usize);
                let image = images.get(i as i64);
                q.set.push(name);
                q.index.push(idx[i]);
                q.class.push(classes[idx[i] as usize]);
                let Some(&score) = table_score.get(&idx[i]) else {
                    return Err(StageError::failed(format!(
                        "test image {} is not in the `scores` input: scores and data come from different ingests; wire both from the same `ingest`",
                        idx[i]
                    )));
                };
                q.score.push(score);
                q.flagged.push(threshold.filter(|_| score.is_finite()).map(|t| flagged(score, t)));
                q.deletion.push(deletion_auc(&deletion_curve(&model, &image, &salient, &baseline, &scorer, 20)));
                q.deletion_random.push(deletion_auc(&deletion_curve(&model, &image, &shuffled, &baseline, &scorer, 20)));
                q.spearman.push(spearman(&map, &map_random));
            }
            if name == "fixed" {
                random_row = (0..idx.len())
                    .map(|i| cell(&images.get(i as i64), Some(&heat_random.get(i as i64)), Some(format!("rank corr. {:.2}", q.spearman[i]))))
                    .collect::<Result<Vec<_>, _>>()?;
            }
            let label = match name {
                "fixed" => "fixed anomalies".to_string(),
                "top" => format!("{k} most anomalous"),
                _ => format!("{k} most normal"),
            };
            let class: Vec<i64> = idx.iter().map(|&i| classes[i as usize]).collect();
            let shown = &q.score[q.score.len() - idx.len()..];
            let cells = (0..idx.len())
                .map(|i| {
                    cell(
                        &images.get(i as i64),
                        Some(&heat.get(i as i64)),
                        Some(format!("class {}: {}", class[i], versus_threshold(shown[i], threshold))),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push((label, cells));
            named.push((format!("{name}_class"), Tensor::from_slice(&class)));
            named.push((format!("{name}_index"), index));
            named.push((format!("{name}_image"), images));
            named.push((format!("{name}_heatmap"), heat));
            named.push((format!("{name}_score"), Tensor::from_slice(shown)));
        }
        if let Some(t) = threshold {
            named.push(("threshold".to_string(), Tensor::from_slice(&[t])));
        }
        rows.insert(1, ("randomised network".to_string(), random_row));
        Tensor::write_safetensors(&named, ctx.output("heatmaps")).map_err(te)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let anomalous = q.set.iter().filter(|s| **s != "bottom").count();
        ctx.log(format!(
            "deletion AUC over the {anomalous} anomalous images: {:.3} along the maps, {:.3} in random order (lower: the map found what makes the score); rank correlation with the randomised network's maps: {:.3} (near 0: the maps depend on what was learned)",
            mean(&q.deletion[..anomalous]),
            mean(&q.deletion_random[..anomalous]),
            mean(&q.spearman)
        ));
        let rows_shown = q.set.len();
        let mut table = DataFrame::new(vec![
            Column::new("set".into(), q.set),
            Column::new("index".into(), q.index),
            Column::new("class".into(), q.class),
            Column::new("score".into(), q.score),
            Column::new("threshold".into(), vec![threshold; rows_shown]),
            Column::new("flagged".into(), q.flagged),
            Column::new("deletion_auc".into(), q.deletion),
            Column::new("deletion_auc_random".into(), q.deletion_random),
            Column::new("randomisation_spearman".into(), q.spearman),
        ])
        .map_err(pe)?;
        stages::table::write_parquet(&mut table, &ctx.output("quality")).map_err(to_stage)?;
        // No node id in the figure: it is not in this node's key (the plot stage labels panels).
        let mut title = format!("{} of the anomaly score", if method == CamMethod::GradCam { "Grad-CAM" } else { "HiResCAM" });
        if let Some(t) = threshold {
            title += &format!(" (threshold t = {t:.3})");
        }
        png(&ctx.output("overlay"), (1100, 650), |root| image_grid(root, &title, &rows)).map_err(to_stage)
    }
}

/// The `quality` table's columns, one entry per explained image.
#[derive(Default)]
struct Quality {
    set: Vec<&'static str>,
    index: Vec<i64>,
    class: Vec<i64>,
    score: Vec<f64>,
    flagged: Vec<Option<bool>>,
    deletion: Vec<f64>,
    deletion_random: Vec<f64>,
    spearman: Vec<f64>,
}
