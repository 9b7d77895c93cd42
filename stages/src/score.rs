//! Per-image latent codes, distances and anomaly scores for the train and test sets, as one table.

use polars::prelude::*;
use tch::Tensor;

use crate::data::OneClass;
use crate::models::svdd::SvddModel;
use crate::table::matrix_columns;
use crate::Result;

/// Columns: `split` (train / holdout / test), `index`, `label` (0 normal, 1 anomaly), `class`, `distance`
/// (||phi(x) - c||^2), `score` (higher = more anomalous), `z0..` latent code.
pub fn score_table(model: &SvddModel, data: &OneClass, batch: i64) -> Result<DataFrame> {
    let (train_z, train_d) = model.embed(&data.train_x, batch);
    let n_train = train_z.size()[0] as usize;
    let n_hold = data.holdout_x.size()[0] as usize;
    let (mut zs, mut ds) = (vec![train_z], vec![train_d]);
    if n_hold > 0 {
        let (hz, hd) = model.embed(&data.holdout_x, batch);
        zs.push(hz);
        ds.push(hd);
    }
    let (test_z, test_d) = model.embed(&data.test_x, batch);
    let n_test = test_z.size()[0] as usize;
    zs.push(test_z);
    ds.push(test_d);
    let dist = Tensor::cat(&ds, 0);
    let score = model.score_from_distance(&dist);
    let z = Tensor::cat(&zs, 0);
    let mut split = vec!["train"; n_train];
    split.extend(vec!["holdout"; n_hold]);
    split.extend(vec!["test"; n_test]);
    let index: Vec<i64> = (0..n_train as i64).chain(0..n_hold as i64).chain(0..n_test as i64).collect();
    let mut label = vec![0i64; n_train + n_hold];
    label.extend(Vec::<i64>::try_from(&data.test_label)?);
    let mut class = vec![-1i64; n_train + n_hold];
    class.extend(Vec::<i64>::try_from(&data.test_class)?);
    let mut cols = vec![
        Column::new("split".into(), split),
        Column::new("index".into(), index),
        Column::new("label".into(), label),
        Column::new("class".into(), class),
        Column::new("distance".into(), Vec::<f64>::try_from(dist.to_kind(tch::Kind::Double))?),
        Column::new("score".into(), Vec::<f64>::try_from(score.to_kind(tch::Kind::Double))?),
    ];
    cols.extend(matrix_columns(&z, "z")?);
    Ok(DataFrame::new(cols)?)
}
