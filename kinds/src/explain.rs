//! `explain`: Grad-CAM (default: its HiResCAM variant) of the anomaly score for (a) a FIXED set of anomalous test images, the same
//! under every model (the first image of each anomalous class), and (b) the k most and k least
//! anomalous test images under this model. Outputs `heatmaps` (safetensors: indices, images,
//! heatmaps, scores) and `overlay` (PNG grid).

use std::collections::BTreeMap;

use stages::data::OneClass;
use stages::eval::ScoreTable;
use stages::explain::{grad_cam, CamMethod, Scorer};
use stages::models::svdd::SvddModel;
use stages::models::Arch;
use stages::plot::{image_grid, png, Cell};
use tch::{Kind, Tensor};

use super::ml::{self, to_stage};
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
    /// 7: the overlay in viridis as matplotlib defines it (colorous).
    fn version(&self) -> u32 {
        7
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
        Ok(vec![OutputSpec::new("heatmaps", "gradcam.safetensors"), OutputSpec::new("overlay", "gradcam.png")])
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
        let scorer = match (fit.get("mean"), fit.get("precision")) {
            (Some(mean), Some(precision)) => Scorer::Mahalanobis { mean, precision },
            _ => Scorer::Distance,
        };
        let table = ScoreTable::read(ctx.input("scores")?).map_err(to_stage)?;
        let test = table.rows("test");
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
        for (name, idx) in [("fixed", &fixed), ("top", &top), ("bottom", &bottom)] {
            let index = Tensor::from_slice(idx);
            let images = data.test_x.index_select(0, &index);
            let (heat, scores) = grad_cam(&model, &images, &scorer, method).map_err(to_stage)?;
            let label = match name {
                "fixed" => "fixed anomalies".to_string(),
                "top" => format!("{k} most anomalous"),
                _ => format!("{k} most normal"),
            };
            let class: Vec<i64> = idx.iter().map(|&i| classes[i as usize]).collect();
            let cells = (0..idx.len())
                .map(|i| cell(&images.get(i as i64), Some(&heat.get(i as i64)), Some(format!("class {}, score {:.3}", class[i], scores[i]))))
                .collect::<Result<Vec<_>, _>>()?;
            rows.push((label, cells));
            named.push((format!("{name}_class"), Tensor::from_slice(&class)));
            named.push((format!("{name}_index"), index));
            named.push((format!("{name}_image"), images));
            named.push((format!("{name}_heatmap"), heat));
            named.push((format!("{name}_score"), Tensor::from_slice(&scores)));
        }
        Tensor::write_safetensors(&named, ctx.output("heatmaps")).map_err(te)?;
        // No node id in the figure: it is not in this node's key (the plot stage labels panels).
        let title = format!("{} of the anomaly score", if method == CamMethod::GradCam { "Grad-CAM" } else { "HiResCAM" });
        png(&ctx.output("overlay"), (1100, 620), |root| image_grid(root, &title, &rows)).map_err(to_stage)
    }
}
