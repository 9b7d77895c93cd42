//! The networks: LeNet-type encoders and decoders for MNIST-like and CIFAR-10 images.
//!
//! Variable paths are the tensor names in the weights file (`encoder.conv1.weight`), so a
//! pretrained autoencoder's encoder initialises a Deep SVDD network by name.

pub mod autoencoder;
pub mod cifar_lenet;
pub mod mnist_lenet;
pub mod svdd;

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use crate::rng::Rng;
use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// MNIST / Fashion-MNIST LeNet, 1x28x28, rep_dim 32.
    MnistLeNet,
    /// CIFAR-10 LeNet, 3x32x32, rep_dim 128.
    CifarLeNet,
}

impl Arch {
    pub fn for_channels(channels: i64) -> Self {
        if channels == 3 {
            Arch::CifarLeNet
        } else {
            Arch::MnistLeNet
        }
    }
    pub fn rep_dim(self) -> i64 {
        match self {
            Arch::MnistLeNet => 32,
            Arch::CifarLeNet => 128,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::MnistLeNet => "mnist_lenet",
            Arch::CifarLeNet => "cifar_lenet",
        }
    }
}

/// An encoder phi: images -> latent codes, exposing the last conv layer for Grad-CAM.
pub trait Encoder: Send {
    /// Returns (last conv layer's BatchNorm output, before the leaky ReLU; latent code).
    fn forward_features(&self, x: &Tensor, train: bool) -> (Tensor, Tensor);
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_features(x, train).1
    }
    /// What the decoder receives: the latent code itself, or (CIFAR autoencoder) its BatchNorm1d.
    fn bottleneck(&self, z: &Tensor, _train: bool) -> Tensor {
        z.shallow_clone()
    }
}

pub trait Decoder: Send {
    fn forward(&self, z: &Tensor, train: bool) -> Tensor;
}

/// Leaky ReLU with an arbitrary negative slope (< 1). libtorch's fused kernel for the default
/// 0.01 (tch exposes no other slope); max(x, slope * x) otherwise: the same function.
pub fn leaky(x: &Tensor, slope: f64) -> Tensor {
    if slope == 0.01 {
        x.leaky_relu()
    } else {
        x.maximum(&(x * slope))
    }
}

pub fn conv(p: nn::Path, cin: i64, cout: i64, pad: i64) -> nn::Conv2D {
    nn::conv2d(p, cin, cout, 5, nn::ConvConfig { padding: pad, bias: false, ..Default::default() })
}

pub fn deconv(p: nn::Path, cin: i64, cout: i64, pad: i64) -> nn::ConvTranspose2D {
    nn::conv_transpose2d(p, cin, cout, 5, nn::ConvTransposeConfig { padding: pad, bias: false, ..Default::default() })
}

pub fn bn2d(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, nn::BatchNormConfig { eps: 1e-4, affine: false, ..Default::default() })
}

pub fn bn1d(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm1d(p, c, nn::BatchNormConfig { eps: 1e-4, affine: false, ..Default::default() })
}

pub fn linear(p: nn::Path, i: i64, o: i64) -> nn::Linear {
    nn::linear(p, i, o, nn::LinearConfig { bias: false, ..Default::default() })
}

/// Up-samples x2 (nearest), as F.interpolate(scale_factor=2).
pub fn up2(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
}

pub fn apply_bn(bn: &nn::BatchNorm, x: &Tensor, train: bool) -> Tensor {
    bn.forward_t(x, train)
}

pub fn apply<M: Module>(m: &M, x: &Tensor) -> Tensor {
    m.forward(x)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's default for conv and linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    TorchDefault,
    /// Xavier-uniform with the leaky-ReLU gain (Ruff's CIFAR-10 nets).
    XavierLeaky,
}

/// Re-initialises every weight of `vs` from a seeded RNG (torch's global generator is shared
/// between concurrently training nodes; this keeps each node's init reproducible).
pub fn init_weights(vs: &nn::VarStore, rng: &mut Rng, init: Init) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in vars {
            if !name.ends_with(".weight") {
                continue;
            }
            let s = t.size();
            let receptive: i64 = s[2..].iter().product::<i64>().max(1);
            // conv: [out, in, k, k]; transposed conv: [in, out, k, k]; linear: [out, in]. PyTorch
            // computes fan_in from dim 1 in every case.
            let fan_in = (s[1] * receptive) as f64;
            let fan_out = (s[0] * receptive) as f64;
            let bound = match (init, name.contains("fc") || s.len() == 2) {
                (Init::XavierLeaky, false) => {
                    let gain = (2.0 / (1.0 + 0.01f64.powi(2))).sqrt();
                    gain * (6.0 / (fan_in + fan_out)).sqrt()
                }
                _ => 1.0 / fan_in.sqrt(),
            };
            let n = t.numel();
            let vals: Vec<f32> = (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect();
            let src = Tensor::from_slice(&vals).view(s.as_slice()).to_device(t.device());
            t.copy_(&src);
        }
        Ok(())
    })
}

pub fn encoder(p: &nn::Path, arch: Arch, slope: f64, with_bn1d: bool) -> Box<dyn Encoder> {
    match arch {
        Arch::MnistLeNet => Box::new(mnist_lenet::Encoder::new(p, slope)),
        Arch::CifarLeNet => Box::new(cifar_lenet::Encoder::new(p, slope, with_bn1d)),
    }
}

pub fn decoder(p: &nn::Path, arch: Arch, slope: f64) -> Box<dyn Decoder> {
    match arch {
        Arch::MnistLeNet => Box::new(mnist_lenet::Decoder::new(p, slope)),
        Arch::CifarLeNet => Box::new(cifar_lenet::Decoder::new(p, slope)),
    }
}

pub fn default_init(arch: Arch) -> Init {
    match arch {
        Arch::MnistLeNet => Init::TorchDefault,
        Arch::CifarLeNet => Init::XavierLeaky,
    }
}
