//! Checkpointed training on small synthetic data: the Adam in tensor ops trains exactly as tch's
//! (libtorch's) Adam did, and a resumed training (after a completed shorter run, after a kill at a
//! partial checkpoint, or with nothing left to train) gives the bytes of a cold run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stages::data::OneClass;
use stages::models::autoencoder::Autoencoder;
use stages::models::svdd::{Objective, SvddModel};
use stages::models::{self, Arch};
use stages::rng::Rng;
use stages::train::svdd::{self, SvddConfig};
use stages::train::{autoencoder, batches, reconstruction_error, Checkpoints, History, TrainConfig};
use stages::{Monitor, Quiet};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stages-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 150 MNIST-sized images: a per-image blob position and brightness plus noise, all seeded.
fn synthetic() -> OneClass {
    tch::set_num_threads(1);
    let mut rng = Rng::new(42);
    let n = 150;
    let mut px = Vec::with_capacity(n * 28 * 28);
    for _ in 0..n {
        let (cx, cy, b) = (8.0 + 12.0 * rng.uniform(), 8.0 + 12.0 * rng.uniform(), 0.5 + 0.5 * rng.uniform());
        for y in 0..28 {
            for x in 0..28 {
                let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                px.push((b * (-d2 / 18.0).exp() + 0.1 * rng.uniform()) as f32);
            }
        }
    }
    let x = Tensor::from_slice(&px).view([n as i64, 1, 28, 28]);
    OneClass {
        holdout_x: x.narrow(0, 0, 0),
        test_x: x.narrow(0, 0, 10),
        test_label: Tensor::zeros([10], (Kind::Int64, Device::Cpu)),
        test_class: Tensor::zeros([10], (Kind::Int64, Device::Cpu)),
        scale: Tensor::from_slice(&[0.0f32, 1.0]),
        train_x: x,
    }
}

/// lr drops x0.1 after epoch 2, so resumed runs must pick the schedule up correctly.
fn cfg(epochs: usize, wd: f64) -> TrainConfig {
    TrainConfig { epochs, batch_size: 32, lr: 1e-3, milestones: vec![2], weight_decay: wd, seed: 5, device: Device::Cpu, leaky_slope: 0.01 }
}

fn svdd_cfg(epochs: usize, mu2: f64, objective: Objective) -> SvddConfig {
    SvddConfig { train: cfg(epochs, 1e-6), objective, mu1: 1.0, mu2, warm_up_epochs: 1, center_eps: 0.1 }
}

fn bits(h: &History) -> Vec<Vec<u64>> {
    let f = |v: &Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    vec![h.epoch.iter().map(|e| *e as u64).collect(), f(&h.loss), f(&h.svdd), f(&h.reconstruction), f(&h.lr)]
}

fn history_bytes(h: &History, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.parquet"));
    stages::table::write_parquet(&mut h.to_frame().unwrap(), &path).unwrap();
    std::fs::read(path).unwrap()
}

fn ae_bytes(ae: &Autoencoder, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.safetensors"));
    ae.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

fn svdd_bytes(m: &SvddModel, dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(format!("{name}.safetensors"));
    m.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    // The checkpoints (each has its `.sha256` beside it).
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    v.sort();
    v
}

/// Cancels the training once `after` epochs are done (their checkpoint is written by then).
struct KillAfter {
    after: usize,
    fired: AtomicBool,
}
impl Monitor for KillAfter {
    fn epoch(&self, epoch: usize, _: usize, _: f64) {
        if epoch >= self.after {
            self.fired.store(true, Ordering::SeqCst);
        }
    }
    fn cancelled(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

fn kill_after(after: usize) -> KillAfter {
    KillAfter { after, fired: AtomicBool::new(false) }
}

// ---------------------------------------------------------------------------------------------
// The training loops as they were with tch's `nn::Adam` (the reference for "byte-identical").

fn reference_pretrain(data: &OneClass, cfg: &TrainConfig) -> (Autoencoder, History) {
    let ae = Autoencoder::new(Arch::MnistLeNet, cfg).unwrap();
    let mut opt = nn::Adam { wd: cfg.weight_decay, ..Default::default() }.build(&ae.vs, cfg.lr).unwrap();
    let mut rng = Rng::new(cfg.seed.wrapping_add(1));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    for epoch in 1..=cfg.epochs {
        let lr = cfg.lr_at(epoch);
        opt.set_lr(lr);
        let (mut sum, mut count) = (0.0, 0usize);
        for idx in batches(&mut rng, n, cfg.batch_size) {
            let x = data.train_x.index_select(0, &idx);
            let loss = reconstruction_error(&ae.reconstruct(&x, true), &x).mean(Kind::Float);
            opt.backward_step(&loss);
            let b = idx.size()[0] as usize;
            sum += loss.double_value(&[]) * b as f64;
            count += b;
        }
        let mean = sum / count as f64;
        history.push(epoch, mean, f64::NAN, mean, lr).unwrap();
    }
    (ae, history)
}

fn radius_quantile(dist: &Tensor, nu: f64) -> f64 {
    let mut v: Vec<f64> = Vec::<f64>::try_from(dist.sqrt().to_kind(Kind::Double).flatten(0, -1)).unwrap();
    v.sort_by(f64::total_cmp);
    let pos = (1.0 - nu) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn reference_svdd(data: &OneClass, pretrained: &Path, cfg: &SvddConfig) -> (SvddModel, History) {
    let t = &cfg.train;
    let arch = Arch::MnistLeNet;
    let hybrid = cfg.mu2 > 0.0;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let encoder = models::encoder(&(vs.root() / "encoder"), arch, t.leaky_slope, hybrid);
    let decoder = hybrid.then(|| models::decoder(&(vs.root() / "decoder"), arch, t.leaky_slope));
    models::init_weights(&vs, &mut Rng::new(t.seed), models::default_init(arch)).unwrap();
    assert!(vs.load_partial(pretrained).unwrap().is_empty());
    let c = svdd::init_center(encoder.as_ref(), &data.train_x, t.batch_size as i64, cfg.center_eps, Device::Cpu);
    let mut radius = 0.0f64;
    let mut opt = nn::Adam { wd: t.weight_decay, ..Default::default() }.build(&vs, t.lr).unwrap();
    let mut rng = Rng::new(t.seed.wrapping_add(2));
    let n = data.train_x.size()[0] as usize;
    let mut history = History::default();
    for epoch in 1..=t.epochs {
        let lr = t.lr_at(epoch);
        opt.set_lr(lr);
        let (mut sum, mut sum_svdd, mut sum_rec, mut count) = (0.0, 0.0, 0.0, 0usize);
        for idx in batches(&mut rng, n, t.batch_size) {
            let x = data.train_x.index_select(0, &idx);
            let z = encoder.forward(&x, true);
            let dist = (&z - &c).square().sum_dim_intlist(1, false, Kind::Float);
            let svdd_loss = match cfg.objective {
                Objective::OneClass => dist.mean(Kind::Float),
                Objective::SoftBoundary { nu } => {
                    let r2 = radius * radius;
                    (&dist - r2).relu().mean(Kind::Float) / nu + r2
                }
            };
            let mut loss = &svdd_loss * cfg.mu1;
            let mut rec_value = f64::NAN;
            if let Some(dec) = &decoder {
                let rec = reconstruction_error(&dec.forward(&encoder.bottleneck(&z, true), true), &x).mean(Kind::Float);
                rec_value = rec.double_value(&[]);
                #[allow(clippy::assign_op_pattern)]
                {
                    loss = loss + rec * cfg.mu2;
                }
            }
            opt.backward_step(&loss);
            if let Objective::SoftBoundary { nu } = cfg.objective {
                if epoch > cfg.warm_up_epochs {
                    radius = radius_quantile(&dist.detach(), nu);
                }
            }
            let b = idx.size()[0] as usize;
            sum += loss.double_value(&[]) * b as f64;
            sum_svdd += svdd_loss.double_value(&[]) * b as f64;
            sum_rec += rec_value * b as f64;
            count += b;
        }
        let k = count as f64;
        history.push(epoch, sum / k, sum_svdd / k, sum_rec / k, lr).unwrap();
    }
    vs.freeze();
    (SvddModel { vs, arch, encoder, decoder, c, radius, objective: cfg.objective, leaky_slope: t.leaky_slope }, history)
}

// ---------------------------------------------------------------------------------------------

/// A Linear + BatchNorm model trained with tch's Adam and with ours from the same init: every
/// variable (running statistics too) equal after each step, with and without weight decay, across
/// a learning-rate change.
#[test]
fn adam_matches_tch_adam_exactly_on_linear_batchnorm() {
    tch::set_num_threads(1);
    let build = |vs: &nn::VarStore| {
        let r = vs.root();
        let l1 = nn::linear(&r / "l1", 20, 16, Default::default());
        let bn = nn::batch_norm1d(&r / "bn", 16, Default::default());
        let l2 = nn::linear(&r / "l2", 16, 3, Default::default());
        move |x: &Tensor| x.apply(&l1).apply_t(&bn, true).relu().apply(&l2)
    };
    for wd in [0.0, 1e-2] {
        let (a, b) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
        let (fa, fb) = (build(&a), build(&b));
        let mut rng = Rng::new(1);
        tch::no_grad(|| {
            let mut names: Vec<(String, Tensor)> = a.variables().into_iter().collect();
            names.sort_by(|x, y| x.0.cmp(&y.0));
            for (k, t) in names {
                let v: Vec<f32> = (0..t.numel()).map(|_| (rng.uniform() - 0.5) as f32).collect();
                let src = Tensor::from_slice(&v).view(t.size().as_slice());
                t.shallow_clone().copy_(&src);
                b.variables()[&k].shallow_clone().copy_(&src);
            }
        });
        let mut theirs = nn::Adam { wd, ..Default::default() }.build(&a, 1e-2).unwrap();
        let mut ours = stages::train::adam::Adam::new(&b, 1e-2, wd).unwrap();
        for step in 1..=40 {
            let lr = if step > 20 { 1e-3 } else { 1e-2 };
            theirs.set_lr(lr);
            ours.set_lr(lr);
            let x: Vec<f32> = (0..8 * 20).map(|_| (rng.uniform() * 4.0 - 2.0) as f32).collect();
            let x = Tensor::from_slice(&x).view([8, 20]);
            let y = Tensor::from_slice(&(0..8).map(|i| i % 3).collect::<Vec<i64>>());
            theirs.backward_step(&fa(&x).cross_entropy_for_logits(&y));
            ours.backward_step(&fb(&x).cross_entropy_for_logits(&y));
            for (k, t) in a.variables() {
                assert!(t.equal(&b.variables()[&k]), "wd {wd}: `{k}` differs after step {step}");
            }
        }
    }
}

#[test]
fn cold_pretraining_is_byte_identical_to_the_tch_adam_loop() {
    let data = synthetic();
    let d = tmp("ae-ref");
    for wd in [0.0, 0.5e-3] {
        let (ra, rh) = reference_pretrain(&data, &cfg(4, wd));
        let (ae, h) = autoencoder::pretrain(&data, &cfg(4, wd), &Quiet).unwrap();
        assert!(ae_bytes(&ae, &d, "new") == ae_bytes(&ra, &d, "ref"), "wd {wd}: weights differ");
        assert!(history_bytes(&h, &d, "new") == history_bytes(&rh, &d, "ref"), "wd {wd}: history differs");
    }
}

#[test]
fn cold_deep_svdd_is_byte_identical_to_the_tch_adam_loop() {
    let data = synthetic();
    let d = tmp("svdd-ref");
    let (ae, _) = autoencoder::pretrain(&data, &cfg(2, 1e-6), &Quiet).unwrap();
    let ae_path = d.join("ae.safetensors");
    ae.save(&ae_path).unwrap();
    for (mu2, objective) in [(0.0, Objective::OneClass), (1.0, Objective::OneClass), (0.0, Objective::SoftBoundary { nu: 0.1 })] {
        let c = svdd_cfg(4, mu2, objective);
        let (rm, rh) = reference_svdd(&data, &ae_path, &c);
        let (m, h) = svdd::train(&data, Some(&ae_path), &c, &Quiet).unwrap();
        assert!(svdd_bytes(&m, &d, "new") == svdd_bytes(&rm, &d, "ref"), "{mu2} {objective:?}: model differs");
        assert!(history_bytes(&h, &d, "new") == history_bytes(&rh, &d, "ref"), "{mu2} {objective:?}: history differs");
    }
}

#[test]
fn pretraining_resumes_byte_identically() {
    let data = synthetic();
    let d = tmp("ae-resume");
    let (cold, cold_h) = autoencoder::pretrain(&data, &cfg(6, 1e-6), &Quiet).unwrap();
    let want = (ae_bytes(&cold, &d, "cold"), history_bytes(&cold_h, &d, "cold"));

    // (a) A completed 3-epoch training, then `epochs: 6` in the same folder.
    let ck = Checkpoints::new(d.join("a"));
    let (_, h3, r) = autoencoder::pretrain_checkpointed(&data, &cfg(3, 1e-6), Some(&ck), &Quiet).unwrap();
    assert_eq!((r, h3.epoch.len()), (None, 3));
    assert_eq!(files(&ck.dir), ["epoch-3.safetensors"]);
    let (ae, h, r) = autoencoder::pretrain_checkpointed(&data, &cfg(6, 1e-6), Some(&ck), &Quiet).unwrap();
    assert_eq!(r, Some(3));
    assert!((ae_bytes(&ae, &d, "a"), history_bytes(&h, &d, "a")) == want, "differs from the cold run");
    assert_eq!(files(&ck.dir), ["epoch-3.safetensors", "epoch-6.safetensors"], "completed files stay, partials go");
    assert_eq!(bits(&h), bits(&cold_h));

    // Nothing left to train: the completed checkpoint is the result.
    let (ae, h, r) = autoencoder::pretrain_checkpointed(&data, &cfg(6, 1e-6), Some(&ck), &Quiet).unwrap();
    assert_eq!(r, Some(6));
    assert!((ae_bytes(&ae, &d, "a6"), history_bytes(&h, &d, "a6")) == want, "differs from the cold run");

    // (b) Killed after epoch 4's checkpoint, then resumed to 6.
    let ck = Checkpoints::new(d.join("b"));
    let e = autoencoder::pretrain_checkpointed(&data, &cfg(6, 1e-6), Some(&ck), &kill_after(4)).err().unwrap();
    assert!(matches!(e, stages::Error::Cancelled), "{e}");
    assert_eq!(files(&ck.dir), ["epoch-4.partial.safetensors"]);
    let (ae, h, r) = autoencoder::pretrain_checkpointed(&data, &cfg(6, 1e-6), Some(&ck), &Quiet).unwrap();
    assert_eq!(r, Some(4));
    assert!((ae_bytes(&ae, &d, "b"), history_bytes(&h, &d, "b")) == want, "differs from the cold run");
    assert_eq!(files(&ck.dir), ["epoch-6.safetensors"]);
}

#[test]
fn deep_svdd_resumes_byte_identically() {
    let data = synthetic();
    let d = tmp("svdd-resume");
    let (ae, _) = autoencoder::pretrain(&data, &cfg(2, 1e-6), &Quiet).unwrap();
    let ae_path = d.join("ae.safetensors");
    ae.save(&ae_path).unwrap();
    for (i, (mu2, objective)) in
        [(0.0, Objective::OneClass), (0.5, Objective::OneClass), (0.0, Objective::SoftBoundary { nu: 0.1 })].into_iter().enumerate()
    {
        let (cold, cold_h) = svdd::train(&data, Some(&ae_path), &svdd_cfg(6, mu2, objective), &Quiet).unwrap();
        let want = (svdd_bytes(&cold, &d, "cold"), history_bytes(&cold_h, &d, "cold"));

        let ck = Checkpoints::new(d.join(format!("a{i}")));
        let (_, _, r) = svdd::train_checkpointed(&data, Some(&ae_path), &svdd_cfg(3, mu2, objective), Some(&ck), &Quiet).unwrap();
        assert_eq!(r, None);
        let (m, h, r) = svdd::train_checkpointed(&data, Some(&ae_path), &svdd_cfg(6, mu2, objective), Some(&ck), &Quiet).unwrap();
        assert_eq!(r, Some(3));
        assert!((svdd_bytes(&m, &d, "a"), history_bytes(&h, &d, "a")) == want, "{mu2} {objective:?}: 3 then 6");

        let ck = Checkpoints::new(d.join(format!("b{i}")));
        let e = svdd::train_checkpointed(&data, Some(&ae_path), &svdd_cfg(6, mu2, objective), Some(&ck), &kill_after(4)).err().unwrap();
        assert!(matches!(e, stages::Error::Cancelled), "{e}");
        assert_eq!(files(&ck.dir), ["epoch-4.partial.safetensors"]);
        let (m, h, r) = svdd::train_checkpointed(&data, Some(&ae_path), &svdd_cfg(6, mu2, objective), Some(&ck), &Quiet).unwrap();
        assert_eq!(r, Some(4));
        assert!((svdd_bytes(&m, &d, "b"), history_bytes(&h, &d, "b")) == want, "{mu2} {objective:?}: killed at 4");
        if let Objective::SoftBoundary { .. } = objective {
            assert!(m.radius > 0.0 && m.radius == cold.radius);
        }
    }
}

#[test]
fn min_interval_saves_only_the_last_epoch_and_bad_checkpoints_are_named_errors() {
    let data = synthetic();
    let d = tmp("ck-errors");
    let ck = Checkpoints::new(d.join("slow")).with_min_interval(Duration::from_secs(3600));
    autoencoder::pretrain_checkpointed(&data, &cfg(3, 1e-6), Some(&ck), &Quiet).unwrap();
    assert_eq!(files(&ck.dir), ["epoch-3.safetensors"]);

    // Another setting (lr) than the checkpoint's: refused, not silently continued.
    let mut other = cfg(4, 1e-6);
    other.lr = 2e-3;
    let e = autoencoder::pretrain_checkpointed(&data, &other, Some(&ck), &Quiet).err().unwrap().to_string();
    assert!(e.contains("epoch-3.safetensors") && e.contains("other settings") && e.contains("--no-resume"), "{e}");

    // A damaged file: named, with how to start over; the earlier checkpoint is not used silently.
    let ck = Checkpoints::new(d.join("damaged"));
    std::fs::create_dir_all(&ck.dir).unwrap();
    std::fs::write(ck.dir.join("epoch-2.partial.safetensors"), b"not a checkpoint").unwrap();
    let e = autoencoder::pretrain_checkpointed(&data, &cfg(3, 1e-6), Some(&ck), &Quiet).err().unwrap().to_string();
    assert!(e.contains("epoch-2.partial.safetensors") && e.contains("--no-resume") && e.contains("starts over"), "{e}");

    // A checkpoint of the right length whose bytes changed on disk (one flipped run of bytes in a
    // weight): refused by its SHA-256, never resumed into a result that differs from a cold run.
    let ck = Checkpoints::new(d.join("flipped"));
    autoencoder::pretrain_checkpointed(&data, &cfg(3, 1e-6), Some(&ck), &Quiet).unwrap();
    let path = ck.dir.join("epoch-3.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for b in &mut bytes[8 + header + 100..8 + header + 140] {
        *b ^= 0x55;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = autoencoder::pretrain_checkpointed(&data, &cfg(4, 1e-6), Some(&ck), &Quiet).err().unwrap().to_string();
    assert!(e.contains("epoch-3.safetensors") && e.contains("bytes changed") && e.contains("--no-resume"), "{e}");

    // A Deep SVDD checkpoint is not an autoencoder one.
    let ck = Checkpoints::new(d.join("kind"));
    let (ae, _) = autoencoder::pretrain(&data, &cfg(1, 1e-6), &Quiet).unwrap();
    let ae_path = d.join("ae.safetensors");
    ae.save(&ae_path).unwrap();
    svdd::train_checkpointed(&data, Some(&ae_path), &svdd_cfg(1, 0.0, Objective::OneClass), Some(&ck), &Quiet).unwrap();
    let e = autoencoder::pretrain_checkpointed(&data, &cfg(2, 1e-6), Some(&ck), &Quiet).err().unwrap().to_string();
    assert!(e.contains("epoch-1.safetensors") && e.contains("train_svdd"), "{e}");
}
