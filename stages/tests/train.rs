//! Models and training on the bundled real MNIST subset: shapes, determinism, loss decrease,
//! the hybrid gradient (mu2 > 0 must change the encoder), safetensors names and a Python round trip.

use std::path::{Path, PathBuf};

use stages::data::{self, DatasetKind, OneClass, Preprocess};
use stages::models::svdd::{Objective, SvddModel};
use stages::models::{self, Arch};
use stages::train::svdd::{self, SvddConfig};
use stages::train::{autoencoder, TrainConfig};
use stages::Quiet;
use tch::{nn, Device, Kind, Tensor};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stages-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mnist(limit: usize) -> OneClass {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/bundled/mnist");
    let raw = data::load_raw(DatasetKind::Mnist, &dir).unwrap();
    data::one_class(&raw, 0, Preprocess::GcnL1MinMax, limit, 500).unwrap()
}

fn cfg(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig { epochs, batch_size: 64, lr: 1e-3, milestones: vec![], weight_decay: 1e-6, seed, device: Device::Cpu, leaky_slope: 0.01 }
}

#[test]
fn shapes_match_the_reference_architectures() {
    for (arch, c, hw, rep, feat) in [(Arch::MnistLeNet, 1, 28, 32, [4, 14, 14]), (Arch::CifarLeNet, 3, 32, 128, [128, 8, 8])] {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = models::encoder(&(vs.root() / "encoder"), arch, 0.01, true);
        let dec = models::decoder(&(vs.root() / "decoder"), arch, 0.01);
        let x = Tensor::rand([5, c, hw, hw], (Kind::Float, Device::Cpu));
        let (a, z) = enc.forward_features(&x, true);
        assert_eq!(z.size(), vec![5, rep]);
        assert_eq!(a.size()[1..], feat);
        assert_eq!(dec.forward(&enc.bottleneck(&z, true), true).size(), vec![5, c, hw, hw]);
        // No biases anywhere; BatchNorm has running statistics only (affine = false).
        let names: Vec<String> = vs.variables().keys().cloned().collect();
        assert!(names.iter().all(|n| !n.ends_with(".bias")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("running_mean")));
        assert_eq!(vs.trainable_variables().len(), names.iter().filter(|n| n.ends_with(".weight")).count());
    }
}

#[test]
fn autoencoder_loss_decreases_and_training_is_deterministic() {
    let data = mnist(300);
    let d = tmp("det");
    let (ae1, h1) = autoencoder::pretrain(&data, &cfg(4, 7), &Quiet).unwrap();
    assert!(h1.loss[3] < h1.loss[0] * 0.9, "loss must fall: {:?}", h1.loss);
    let (ae2, _) = autoencoder::pretrain(&data, &cfg(4, 7), &Quiet).unwrap();
    let (ae3, _) = autoencoder::pretrain(&data, &cfg(4, 8), &Quiet).unwrap();
    let (p1, p2, p3) = (d.join("a.safetensors"), d.join("b.safetensors"), d.join("c.safetensors"));
    ae1.save(&p1).unwrap();
    ae2.save(&p2).unwrap();
    ae3.save(&p3).unwrap();
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap(), "same seed -> byte-identical weights");
    assert_ne!(std::fs::read(&p1).unwrap(), std::fs::read(&p3).unwrap(), "another seed -> other weights");
}

fn svdd_cfg(mu2: f64, objective: Objective) -> SvddConfig {
    SvddConfig { train: cfg(3, 11), objective, mu1: 1.0, mu2, warm_up_epochs: 1, center_eps: 0.1 }
}

fn encoder_weights(m: &SvddModel) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().filter(|(k, _)| k.starts_with("encoder.") && k.ends_with("weight")).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The published code's bug: its optimiser held only the encoder, so mu2 had no effect.
#[test]
fn hybrid_reconstruction_term_changes_the_encoder() {
    let data = mnist(300);
    let d = tmp("hybrid");
    let (ae, _) = autoencoder::pretrain(&data, &cfg(2, 3), &Quiet).unwrap();
    let ae_path = d.join("ae.safetensors");
    ae.save(&ae_path).unwrap();
    let (base, hb) = svdd::train(&data, Some(&ae_path), &svdd_cfg(0.0, Objective::OneClass), &Quiet).unwrap();
    let (hyb, hh) = svdd::train(&data, Some(&ae_path), &svdd_cfg(1.0, Objective::OneClass), &Quiet).unwrap();
    assert!(base.decoder.is_none() && hyb.decoder.is_some());
    assert!(hb.reconstruction.iter().all(|r| r.is_nan()) && hh.reconstruction.iter().all(|r| r.is_finite()));
    // Same seed, same start: the only difference is the reconstruction gradient.
    assert!(base.c.equal(&hyb.c), "both start from the same encoder, so the same centre");
    let differ = encoder_weights(&base).iter().zip(encoder_weights(&hyb)).any(|((_, a), (_, b))| !a.equal(&b));
    assert!(differ, "mu2 > 0 must change the encoder weights");
    // The decoder itself was trained (differs from the autoencoder's).
    let ae_dec = Tensor::read_safetensors(&ae_path).unwrap().into_iter().find(|(k, _)| k == "decoder.deconv1.weight").unwrap().1;
    let hyb_dec = hyb.vs.variables()["decoder.deconv1.weight"].shallow_clone();
    assert!(!ae_dec.equal(&hyb_dec), "the decoder is in the optimiser");
}

#[test]
fn soft_boundary_learns_a_radius_and_models_round_trip() {
    let data = mnist(200);
    let d = tmp("soft");
    let (m, _) = svdd::train(&data, None, &svdd_cfg(0.0, Objective::SoftBoundary { nu: 0.1 }), &Quiet).unwrap();
    assert!(m.radius > 0.0);
    let (_, dist) = m.embed(&data.train_x, 128);
    let outside = dist.gt(m.radius * m.radius).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!(outside < 0.35, "about nu of the training points lie outside R: {outside}");
    let path = d.join("svdd.safetensors");
    m.save(&path).unwrap();
    let back = SvddModel::load(&path, Arch::MnistLeNet, Device::Cpu).unwrap();
    assert_eq!(back.objective, Objective::SoftBoundary { nu: 0.1f32 as f64 });
    let (_, d2) = back.embed(&data.train_x, 128);
    assert!(dist.allclose(&d2, 1e-6, 1e-6, false));
}

#[test]
fn diverging_training_is_a_clear_error() {
    let data = mnist(100);
    let mut c = cfg(2, 1);
    c.lr = 1e30;
    let e = svdd::train(&data, None, &SvddConfig { train: c, ..svdd_cfg(0.0, Objective::OneClass) }, &Quiet).err().unwrap().to_string();
    assert!(e.contains("diverged") && e.contains("lower `lr`"), "{e}");
}

/// Weights open in Python's `safetensors` with module-path names and identical values.
#[test]
fn safetensors_open_in_python_with_module_path_names() {
    let data = mnist(100);
    let d = tmp("py");
    let (ae, _) = autoencoder::pretrain(&data, &cfg(1, 5), &Quiet).unwrap();
    let path = d.join("ae.safetensors");
    ae.save(&path).unwrap();
    let script = r#"
import sys
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
for k in sorted(t):
    print(k, list(t[k].shape), str(t[k].dtype), repr(float(t[k].astype('float64').sum())))
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().expect("python3 runs");
    assert!(out.status.success(), "python safetensors failed (pip install safetensors numpy): {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut expected = Vec::new();
    let mut vars: Vec<(String, Tensor)> = ae.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, t) in &vars {
        let sum = t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        expected.push((k.clone(), t.size(), sum));
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len());
    for (line, (k, shape, sum)) in lines.iter().zip(&expected) {
        let parts: Vec<&str> = line.splitn(2, ' ').collect();
        assert_eq!(parts[0], k);
        assert!(line.contains(&format!("{shape:?}").replace(' ', "")) || line.contains(&format!("{shape:?}")), "{line} vs {shape:?}");
        let py_sum: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((py_sum - sum).abs() <= 1e-9 * sum.abs().max(1.0), "{k}: {py_sum} vs {sum}");
    }
    for name in ["encoder.conv1.weight", "encoder.bn1.running_mean", "encoder.fc1.weight", "decoder.deconv3.weight"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}
