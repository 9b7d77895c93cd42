//! LeNet-type autoencoder for CIFAR-10 (Ruff et al. 2018, Sec. 4.1): three 5x5 conv layers (32, 64,
//! 128 filters) and a 128-unit linear layer; no biases, BatchNorm without affine parameters
//! (eps 1e-4), leaky ReLU, Xavier-uniform init with the leaky-ReLU gain. The autoencoder adds
//! BatchNorm1d(128) after the linear layer; the Deep SVDD network does not.

use tch::nn;
use tch::Tensor;

use super::{apply, apply_bn, bn1d, bn2d, conv, deconv, leaky, linear, up2};

pub const REP_DIM: i64 = 128;

pub struct Encoder {
    conv1: nn::Conv2D,
    bn2d1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2d2: nn::BatchNorm,
    conv3: nn::Conv2D,
    bn2d3: nn::BatchNorm,
    fc1: nn::Linear,
    bn1d: Option<nn::BatchNorm>,
    slope: f64,
}

impl Encoder {
    pub fn new(p: &nn::Path, slope: f64, with_bn1d: bool) -> Self {
        Encoder {
            conv1: conv(p / "conv1", 3, 32, 2),
            bn2d1: bn2d(p / "bn2d1", 32),
            conv2: conv(p / "conv2", 32, 64, 2),
            bn2d2: bn2d(p / "bn2d2", 64),
            conv3: conv(p / "conv3", 64, 128, 2),
            bn2d3: bn2d(p / "bn2d3", 128),
            fc1: linear(p / "fc1", 128 * 4 * 4, REP_DIM),
            bn1d: with_bn1d.then(|| bn1d(p / "bn1d", REP_DIM)),
            slope,
        }
    }
}

impl super::Encoder for Encoder {
    fn forward_features(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = apply(&self.conv1, x);
        let x = leaky(&apply_bn(&self.bn2d1, &x, train), self.slope).max_pool2d_default(2);
        let x = apply(&self.conv2, &x);
        let x = leaky(&apply_bn(&self.bn2d2, &x, train), self.slope).max_pool2d_default(2);
        let a = apply_bn(&self.bn2d3, &apply(&self.conv3, &x), train);
        let x = leaky(&a, self.slope).max_pool2d_default(2);
        let z = apply(&self.fc1, &x.flatten(1, -1));
        (a, z)
    }
    fn bottleneck(&self, z: &Tensor, train: bool) -> Tensor {
        match &self.bn1d {
            Some(bn) => apply_bn(bn, z, train),
            None => z.shallow_clone(),
        }
    }
}

pub struct Decoder {
    deconv1: nn::ConvTranspose2D,
    bn2d4: nn::BatchNorm,
    deconv2: nn::ConvTranspose2D,
    bn2d5: nn::BatchNorm,
    deconv3: nn::ConvTranspose2D,
    bn2d6: nn::BatchNorm,
    deconv4: nn::ConvTranspose2D,
    slope: f64,
}

impl Decoder {
    pub fn new(p: &nn::Path, slope: f64) -> Self {
        Decoder {
            deconv1: deconv(p / "deconv1", REP_DIM / 16, 128, 2),
            bn2d4: bn2d(p / "bn2d4", 128),
            deconv2: deconv(p / "deconv2", 128, 64, 2),
            bn2d5: bn2d(p / "bn2d5", 64),
            deconv3: deconv(p / "deconv3", 64, 32, 2),
            bn2d6: bn2d(p / "bn2d6", 32),
            deconv4: deconv(p / "deconv4", 32, 3, 2),
            slope,
        }
    }
}

impl super::Decoder for Decoder {
    fn forward(&self, z: &Tensor, train: bool) -> Tensor {
        let x = leaky(&z.view([-1, REP_DIM / 16, 4, 4]), self.slope);
        let x = apply(&self.deconv1, &x);
        let x = up2(&leaky(&apply_bn(&self.bn2d4, &x, train), self.slope));
        let x = apply(&self.deconv2, &x);
        let x = up2(&leaky(&apply_bn(&self.bn2d5, &x, train), self.slope));
        let x = apply(&self.deconv3, &x);
        let x = up2(&leaky(&apply_bn(&self.bn2d6, &x, train), self.slope));
        apply(&self.deconv4, &x).sigmoid()
    }
}
