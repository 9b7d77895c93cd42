//! Step-for-step parity with PyTorch, the Rust half: trains pipe's autoencoder, then One-Class Deep
//! SVDD and the hybrid (mu2 = 0.5) from it, on the bundled MNIST (class 0, `auto` preprocessing),
//! with the library's own training functions, recording every step's batch (row indices) and loss
//! through `Monitor::step`. Writes to OUT: the training images, each model's initial weights (and
//! centre c), the batches and losses. `benches/parity.py OUT` replays the same steps in PyTorch
//! (the project's Python definition of the nets) and compares. `benches/parity.sh` runs both.
//! Usage: cargo bench --profile dev --bench parity -- OUT [steps]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use stages::data::{self, DatasetKind, Preprocess};
use stages::models::autoencoder::Autoencoder;
use stages::models::svdd::Objective;
use stages::train::autoencoder::pretrain;
use stages::train::svdd::{self, SvddConfig};
use stages::train::TrainConfig;
use tch::{Device, Kind, Tensor};

#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<(Vec<i64>, f64)>>,
    limit: usize,
}

impl stages::Monitor for Recorder {
    fn step(&self, batch: &Tensor, loss: f64) {
        let mut s = self.steps.lock().unwrap();
        if s.len() < self.limit {
            s.push((Vec::<i64>::try_from(batch).unwrap(), loss));
        }
    }
}

impl Recorder {
    fn new(limit: usize) -> Recorder {
        Recorder { steps: Mutex::default(), limit }
    }

    /// `batch_index` [total] (all batches concatenated), `batch_len` [steps], `loss` [steps] (f64).
    fn save(&self, path: &Path) {
        let s = self.steps.lock().unwrap();
        let idx: Vec<i64> = s.iter().flat_map(|(b, _)| b.clone()).collect();
        let len: Vec<i64> = s.iter().map(|(b, _)| b.len() as i64).collect();
        let loss: Vec<f64> = s.iter().map(|(_, l)| *l).collect();
        let t = [("batch_index", Tensor::from_slice(&idx)), ("batch_len", Tensor::from_slice(&len)), ("loss", Tensor::from_slice(&loss))];
        Tensor::write_safetensors(&t, path).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let out = PathBuf::from(args.first().map(String::as_str).unwrap_or("target/parity"));
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    std::fs::create_dir_all(&out).unwrap();
    tch::set_num_threads(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let raw = data::load_raw(DatasetKind::Mnist, &data::locate(DatasetKind::Mnist, Some(&root.join("data/bundled"))).unwrap()).unwrap();
    let d = data::one_class_with_holdout(&raw, 0, Preprocess::parse_for("auto", DatasetKind::Mnist).unwrap(), 0, 0, 0.0, 0).unwrap();
    Tensor::write_safetensors(&[("train_x", d.train_x.to_kind(Kind::Float))], out.join("data.safetensors")).unwrap();
    let n = d.train_x.size()[0] as usize;
    // Enough epochs for `steps` steps of batch 64.
    let epochs = steps.div_ceil(n / 64).max(1);
    let cfg =
        TrainConfig { epochs, batch_size: 64, lr: 1e-3, milestones: vec![], weight_decay: 0.5e-6, seed: 0, device: Device::Cpu, leaky_slope: 0.01 };

    // Autoencoder: the initial weights are what `pretrain` builds (seeded by cfg.seed).
    Autoencoder::new(stages::models::Arch::MnistLeNet, &cfg).unwrap().save(&out.join("ae_init.safetensors")).unwrap();
    let rec = Recorder::new(steps);
    let (ae, _) = pretrain(&d, &cfg, &rec).unwrap();
    rec.save(&out.join("ae_steps.safetensors"));
    let ae_path = out.join("ae_trained.safetensors");
    ae.save(&ae_path).unwrap();

    // Deep SVDD (one-class) and the hybrid, both from the trained autoencoder.
    for (name, mu2) in [("svdd", 0.0), ("hybrid", 0.5)] {
        let scfg = SvddConfig { train: cfg.clone(), objective: Objective::OneClass, mu1: 1.0, mu2, warm_up_epochs: 10, center_eps: 0.1 };
        let rec = Recorder::new(steps);
        let (model, _) = svdd::train(&d, Some(&ae_path), &scfg, &rec).unwrap();
        rec.save(&out.join(format!("{name}_steps.safetensors")));
        // The centre is fixed before training; the trained model carries it (svdd.c).
        model.save(&out.join(format!("{name}_trained.safetensors"))).unwrap();
    }
    println!("parity: {n} training images, batch 64, lr 1e-3, {steps} steps per model, written to {}", out.display());
}
