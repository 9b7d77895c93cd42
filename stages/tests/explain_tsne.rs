//! Grad-CAM on a synthetic case (the heatmap's peak lies in the anomalous square) and t-SNE on
//! separated clusters (they stay separated).

use stages::data::OneClass;
use stages::explain::{deletion_auc, deletion_curve, grad_cam, randomised, spearman, CamMethod, Scorer};
use stages::models::svdd::Objective;
use stages::train::svdd::{self, SvddConfig};
use stages::train::TrainConfig;
use stages::tsne::{embed, TsneConfig};
use stages::Quiet;
use tch::{Device, Kind, Tensor};

#[test]
fn grad_cam_peaks_inside_the_anomalous_square() {
    tch::set_num_threads(1);
    // Normal: real MNIST zeros (bundled subset). Anomalies: held-out zeros with a bright 6x6 square
    // pasted where zeros have no ink (the top-left corner).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/bundled/mnist");
    let raw = stages::data::load_raw(stages::data::DatasetKind::Mnist, &dir).unwrap();
    let all = stages::data::one_class(&raw, 0, stages::data::Preprocess::Unit, 0, 0).unwrap();
    let n = all.train_x.size()[0];
    let train_x = all.train_x.narrow(0, 0, n - 8);
    let test_x = all.train_x.narrow(0, n - 8, 8).copy();
    let (r0, c0) = (2i64, 2i64);
    let _ = test_x.narrow(2, r0, 6).narrow(3, c0, 6).fill_(1.0);
    let data = OneClass {
        train_x,
        holdout_x: all.holdout_x.shallow_clone(),
        test_x: test_x.shallow_clone(),
        test_label: Tensor::ones([8], (Kind::Int64, Device::Cpu)),
        test_class: Tensor::ones([8], (Kind::Int64, Device::Cpu)),
        scale: Tensor::from_slice(&[0.0f32, 1.0]),
    };
    let train =
        TrainConfig { epochs: 10, batch_size: 64, lr: 1e-3, milestones: vec![], weight_decay: 1e-6, seed: 1, device: Device::Cpu, leaky_slope: 0.01 };
    let (ae, _) = stages::train::autoencoder::pretrain(&data, &train, &Quiet).unwrap();
    let ae_path = std::env::temp_dir().join(format!("gradcam-ae-{}.safetensors", std::process::id()));
    ae.save(&ae_path).unwrap();
    let cfg = SvddConfig {
        train: TrainConfig { lr: 1e-4, ..train },
        objective: Objective::OneClass,
        mu1: 1.0,
        mu2: 0.0,
        warm_up_epochs: 0,
        center_eps: 0.1,
    };
    let (model, _) = svdd::train(&data, Some(&ae_path), &cfg, &Quiet).unwrap();
    let (heat, scores) = grad_cam(&model, &test_x, &Scorer::Distance, CamMethod::HiResCam).unwrap();
    assert_eq!(heat.size(), vec![8, 28, 28]);
    assert!(scores.iter().all(|s| s.is_finite()));
    let mut hits = 0;
    for i in 0..8 {
        let h = heat.get(i);
        let flat = h.flatten(0, -1).argmax(0, false).int64_value(&[]);
        let (r, c) = (flat / 28, flat % 28);
        // The square, widened by 2 px for the 14x14 -> 28x28 upsampling.
        let inside = (r0 - 2..r0 + 8).contains(&r) && (c0 - 2..c0 + 8).contains(&c);
        eprintln!("image {i}: peak at ({r}, {c}){}", if inside { " in the square" } else { "" });
        hits += usize::from(inside);
    }
    assert!(hits >= 7, "the heatmap peak lies in the square for {hits} of 8 images");
    // Why the maps are speckled: the explained layer (the last conv's BatchNorm output) is
    // max-pooled, so the score's gradient reaches exactly one location of each 2x2 window, and a
    // per-location map is zero at the other three. (Explaining the pooled layer instead gives
    // smooth maps that rank pixels worse: docs/results.md, "Grad-CAM".)
    let (a, z) = model.encoder.forward_features(&test_x.detach().set_requires_grad(true), false);
    let g = Tensor::run_backward(&[(&z - &model.c).square().sum(Kind::Float)], &[&a], false, false);
    assert_eq!(g[0].size(), vec![8, 4, 14, 14]);
    let per_window = g[0].ne(0.0).to_kind(Kind::Float).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>) * 4.0;
    assert_eq!(per_window.size(), vec![8, 4, 7, 7]);
    assert!(per_window.eq(1.0).all().int64_value(&[]) == 1, "locations with gradient per 2x2 window: {per_window}");

    // Deletion (Petsiuk et al. 2018): replacing pixels by the normal mean image along the map
    // removes the square first, so the score falls faster than along a random order, image by
    // image; and the curve starts at 1 (the untouched image) and ends where every pixel is the
    // normal mean.
    let baseline = data.train_x.mean_dim(0, false, Kind::Float);
    let mut along_map = Vec::new();
    let mut at_random = Vec::new();
    for i in 0..8 {
        let map = Vec::<f64>::try_from(heat.get(i).to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let mut salient: Vec<i64> = (0..784).collect();
        salient.sort_by(|&a, &b| map[b as usize].total_cmp(&map[a as usize]));
        let shuffled = stages::rng::Rng::new(i as u64).permutation(784);
        let curve = deletion_curve(&model, &test_x.get(i), &salient, &baseline, &Scorer::Distance, 20);
        assert_eq!(curve.len(), 21);
        assert_eq!(curve[0], 1.0);
        along_map.push(deletion_auc(&curve));
        at_random.push(deletion_auc(&deletion_curve(&model, &test_x.get(i), &shuffled, &baseline, &Scorer::Distance, 20)));
    }
    let better = along_map.iter().zip(&at_random).filter(|(m, r)| m < r).count();
    assert!(better >= 7, "deletion along the map beats a random order for {better} of 8: {along_map:?} vs {at_random:?}");
    // The sanity check's network: same architecture, fresh weights, its own centre; its maps are
    // compared with the trained network's (a number per image, in [-1, 1]).
    let random = randomised(&model, &data.train_x, 0).unwrap();
    let (heat_random, _) = grad_cam(&random, &test_x, &Scorer::Distance, CamMethod::HiResCam).unwrap();
    for i in 0..8 {
        let a = Vec::<f64>::try_from(heat.get(i).to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let b = Vec::<f64>::try_from(heat_random.get(i).to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let r = spearman(&a, &b);
        assert!((-1.0..=1.0).contains(&r), "{r}");
        eprintln!(
            "image {i}: deletion AUC {:.3} along the map, {:.3} at random; rank correlation with the randomised network {r:.3}",
            along_map[i as usize], at_random[i as usize]
        );
    }
}

#[test]
fn tsne_keeps_separated_clusters_separated() {
    // Three Gaussian clusters in 16-D, 60 points each, centres 20 apart, unit spread.
    let mut rng = stages::rng::Rng::new(3);
    let (k, n, d) = (3usize, 60usize, 16usize);
    let mut data = Vec::with_capacity(k * n * d);
    for cluster in 0..k {
        for _ in 0..n {
            for j in 0..d {
                let centre = if j == cluster { 20.0 } else { 0.0 };
                let noise = (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0; // ~N(0, 1)
                data.push((centre + noise) as f32);
            }
        }
    }
    let emb = embed(&data, d, &TsneConfig { perplexity: 15.0, theta: 0.5, epochs: 500, seed: 0 }).unwrap();
    let label = |i: usize| i / n;
    let mut agree = 0;
    for i in 0..emb.len() {
        let nearest = (0..emb.len())
            .filter(|&j| j != i)
            .min_by(|&a, &b| {
                let da = (emb[a][0] - emb[i][0]).powi(2) + (emb[a][1] - emb[i][1]).powi(2);
                let db = (emb[b][0] - emb[i][0]).powi(2) + (emb[b][1] - emb[i][1]).powi(2);
                da.total_cmp(&db)
            })
            .unwrap();
        agree += usize::from(label(nearest) == label(i));
    }
    assert!(agree as f64 / emb.len() as f64 > 0.98, "{agree} of {} nearest neighbours share the cluster", emb.len());
}
