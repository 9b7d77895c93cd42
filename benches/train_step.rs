//! Autoencoder training-step throughput in tch (this crate's nets), for comparison with the same
//! step in PyTorch (`benches/train_step.py`); `benches/train_speed.sh` runs both and prints ratios.
//! Usage: cargo bench --profile dev --bench train_step -- [threads] [steps] (the work is in libtorch;
//! the dev profile reuses the test build instead of a 25-CPU-minute release build of polars)

use std::time::Instant;

use stages::models::autoencoder::Autoencoder;
use stages::models::Arch;
use stages::train::adam::Adam;
use stages::train::{reconstruction_error, TrainConfig};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let threads: i32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    for (arch, c, hw) in [(Arch::MnistLeNet, 1, 28), (Arch::CifarLeNet, 3, 32)] {
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 200,
            lr: 1e-4,
            milestones: vec![],
            weight_decay: 0.5e-6,
            seed: 0,
            device: Device::Cpu,
            leaky_slope: 0.01,
        };
        let x = Tensor::rand([200, c, hw, hw], (Kind::Float, Device::Cpu));
        // libtorch's own Adam (through tch) and pipe's (the same arithmetic in tensor ops, so its
        // moments can be checkpointed), each on its own model from the same initialisation.
        let ae = Autoencoder::new(arch, &cfg).unwrap();
        let mut opt = nn::Adam { wd: cfg.weight_decay, ..Default::default() }.build(&ae.vs, cfg.lr).unwrap();
        let ours_ae = Autoencoder::new(arch, &cfg).unwrap();
        let mut ours = Adam::new(&ours_ae.vs, cfg.lr, cfg.weight_decay).unwrap();
        let time = |f: &mut dyn FnMut()| {
            for _ in 0..5 {
                f();
            }
            let t = Instant::now();
            for _ in 0..steps {
                f();
            }
            (steps * 200) as f64 / t.elapsed().as_secs_f64()
        };
        let ips = time(&mut || {
            let loss = reconstruction_error(&ae.reconstruct(&x, true), &x).mean(Kind::Float);
            opt.backward_step(&loss);
        });
        let ours_ips = time(&mut || {
            let loss = reconstruction_error(&ours_ae.reconstruct(&x, true), &x).mean(Kind::Float);
            ours.backward_step(&loss);
        });
        println!("tch {} threads={threads} batch=200: {ips:.0} img/s", arch.name());
        println!("pipe's Adam {} threads={threads} batch=200: {ours_ips:.0} img/s ({:.3}x the time of libtorch's Adam)", arch.name(), ips / ours_ips);
    }
}
