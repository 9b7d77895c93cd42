//! `fit_threshold`: fits a scorer and threshold on normal images only (never a test label):
//! `radius`, `gaussian` or `mahalanobis` (the "adaptive" variant). The Gaussian of `mahalanobis` is
//! estimated on the training codes; the threshold is cut on the HELD-OUT normal images (ingest's
//! `holdout`), which training never saw, so its false-positive rate on new normal images is what
//! `level` says. Without held-out rows it falls back to the training rows (optimistic) and says so. Outputs `threshold`
//! (one-row Parquet), `scores` (the table re-scored by the method) and `fit` (safetensors: the
//! Mahalanobis mean and precision, for Grad-CAM of that score).

use polars::prelude::*;
use stages::eval::threshold::{self, Cutoff, Method, Shrinkage};
use stages::eval::ScoreTable;
use tch::Tensor;

use super::ml::to_stage;
use crate::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

pub struct FitThreshold;

impl StageKind for FitThreshold {
    fn name(&self) -> &'static str {
        "fit_threshold"
    }
    /// 2: the threshold is cut on held-out rows when the scores have them; `calibration` and
    /// `n_calibration` columns.
    /// 3: the chi-square quantile from statrs (the `chi2` cutoff may differ in its last digits).
    /// 4: a `quantile` cutoff is the conformal order statistic, the ceil((n + 1) level)-th smallest
    /// calibration score (was numpy's interpolated quantile), so the held-out false-positive rate
    /// is at most 1 - level where scores are exchangeable; too few rows for it is an error.
    fn version(&self) -> u32 {
        4
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::optional(
                "method",
                ParamType::choice(&["radius", "gaussian", "mahalanobis"]),
                Value::Str("radius".into()),
                "radius (Deep SVDD score), gaussian (mean + k std) or mahalanobis (latent Gaussian)",
            ),
            ParamSpec::optional(
                "cutoff",
                ParamType::choice(&["quantile", "chi2", "boundary"]),
                Value::Str("quantile".into()),
                "quantile of training scores; chi2 quantile (mahalanobis); boundary = soft-boundary R (radius)",
            ),
            ParamSpec::optional("level", ParamType::Float, Value::Float(0.95), "quantile level for quantile and chi2 cutoffs").above(0.0).below(1.0),
            ParamSpec::optional("k", ParamType::Float, Value::Float(2.0), "gaussian: threshold = mean + k * std"),
            ParamSpec::optional(
                "shrinkage",
                ParamType::choice(&["ledoit-wolf", "ridge"]),
                Value::Str("ledoit-wolf".into()),
                "mahalanobis covariance shrinkage",
            ),
            ParamSpec::optional("ridge", ParamType::Float, Value::Float(1e-3), "shrinkage `ridge`: added to the diagonal"),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::named(&[("scores", true)])
    }
    fn outputs(&self, _: &Params) -> Result<Vec<OutputSpec>, String> {
        Ok(vec![
            OutputSpec::new("threshold", "threshold.parquet"),
            OutputSpec::new("scores", "scores.parquet"),
            OutputSpec::new("fit", "fit.safetensors"),
        ])
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let p = &ctx.params;
        let method_name = p.str("method")?;
        let method = match method_name {
            "gaussian" => Method::Gaussian { k: p.f64("k")? },
            "mahalanobis" => Method::Mahalanobis {
                shrinkage: if p.str("shrinkage")? == "ridge" { Shrinkage::Ridge(p.f64("ridge")?) } else { Shrinkage::LedoitWolf },
            },
            _ => Method::Radius,
        };
        let cutoff_name = p.str("cutoff")?;
        let level = p.f64("level")?;
        let cutoff = match cutoff_name {
            "chi2" => Cutoff::ChiSquare(level),
            "boundary" => Cutoff::Boundary,
            _ => Cutoff::Quantile(level),
        };
        let table = ScoreTable::read(ctx.input("scores")?).map_err(to_stage)?;
        if matches!(cutoff, Cutoff::Boundary) && table.is_one_class() {
            return Err(StageError::failed(
                "cutoff `boundary` needs a soft-boundary model: these scores come from a one-class model (R = 0, so every image \
                 would be flagged); train with `objective: soft-boundary`, or use `cutoff: quantile`",
            ));
        }
        let train = table.rows("train");
        let held = table.rows("holdout");
        let (calibration, cal) = if held.is_empty() {
            ctx.log("warning: no held-out rows (ingest `holdout: 0`): the threshold is cut on the training images, whose scores are optimistic");
            ("train", &train)
        } else {
            ("holdout", &held)
        };
        // Only normal training and held-out rows are passed: the fit cannot see a test label or score.
        let cal_z = table.z_rows(cal);
        let fitted = threshold::fit_calibrated(
            method,
            cutoff,
            &ScoreTable::pick(&table.score, &train),
            &table.z_rows(&train),
            Some((&ScoreTable::pick(&table.score, cal), &cal_z)),
        )
        .map_err(to_stage)?;
        let scores: Vec<f64> = match &fitted.gaussian {
            Some((mean, precision)) => {
                Vec::<f64>::try_from(threshold::mahalanobis(&table.z, mean, precision)).map_err(|e| StageError::failed(e.to_string()))?
            }
            None => table.score.clone(),
        };
        ctx.log(format!("{method_name}/{cutoff_name}: threshold {:.6} (shrinkage {:.4})", fitted.threshold, fitted.shrinkage));
        let mut out = table.to_frame(&scores).map_err(to_stage)?;
        stages::table::write_parquet(&mut out, &ctx.output("scores")).map_err(to_stage)?;
        let mut row = DataFrame::new(vec![
            Column::new("method".into(), [method_name]),
            Column::new("cutoff".into(), [cutoff_name]),
            Column::new("level".into(), [level]),
            Column::new("threshold".into(), [fitted.threshold]),
            Column::new("shrinkage".into(), [fitted.shrinkage]),
            Column::new("n_train".into(), [train.len() as i64]),
            Column::new("calibration".into(), [calibration]),
            Column::new("n_calibration".into(), [cal.len() as i64]),
        ])
        .map_err(|e| StageError::failed(e.to_string()))?;
        stages::table::write_parquet(&mut row, &ctx.output("threshold")).map_err(to_stage)?;
        let t = Tensor::from_slice(&[fitted.threshold]);
        let mut named: Vec<(&str, Tensor)> = vec![("threshold", t)];
        if let Some((mean, precision)) = &fitted.gaussian {
            named.push(("mean", mean.contiguous()));
            named.push(("precision", precision.contiguous()));
        }
        Tensor::write_safetensors(&named, ctx.output("fit")).map_err(|e| StageError::failed(e.to_string()))
    }
}
