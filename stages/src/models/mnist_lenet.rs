//! LeNet-type autoencoder for MNIST and Fashion-MNIST (Ruff et al. 2018, "Deep One-Class
//! Classification", Sec. 4.1): two 5x5 conv layers (8 and 4 filters) and a 32-unit linear layer;
//! no biases, BatchNorm without affine parameters (eps 1e-4), leaky ReLU.

use tch::nn;
use tch::Tensor;

use super::{apply, apply_bn, bn2d, conv, deconv, leaky, linear, up2};

pub const REP_DIM: i64 = 32;

pub struct Encoder {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    fc1: nn::Linear,
    slope: f64,
}

impl Encoder {
    pub fn new(p: &nn::Path, slope: f64) -> Self {
        Encoder {
            conv1: conv(p / "conv1", 1, 8, 2),
            bn1: bn2d(p / "bn1", 8),
            conv2: conv(p / "conv2", 8, 4, 2),
            bn2: bn2d(p / "bn2", 4),
            fc1: linear(p / "fc1", 4 * 7 * 7, REP_DIM),
            slope,
        }
    }
}

impl super::Encoder for Encoder {
    fn forward_features(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let x = apply(&self.conv1, x);
        let x = leaky(&apply_bn(&self.bn1, &x, train), self.slope).max_pool2d_default(2);
        let a = apply_bn(&self.bn2, &apply(&self.conv2, &x), train);
        let x = leaky(&a, self.slope).max_pool2d_default(2);
        let z = apply(&self.fc1, &x.flatten(1, -1));
        (a, z)
    }
}

pub struct Decoder {
    deconv1: nn::ConvTranspose2D,
    bn3: nn::BatchNorm,
    deconv2: nn::ConvTranspose2D,
    bn4: nn::BatchNorm,
    deconv3: nn::ConvTranspose2D,
    slope: f64,
}

impl Decoder {
    pub fn new(p: &nn::Path, slope: f64) -> Self {
        Decoder {
            deconv1: deconv(p / "deconv1", 2, 4, 2),
            bn3: bn2d(p / "bn3", 4),
            deconv2: deconv(p / "deconv2", 4, 8, 3),
            bn4: bn2d(p / "bn4", 8),
            deconv3: deconv(p / "deconv3", 8, 1, 2),
            slope,
        }
    }
}

impl super::Decoder for Decoder {
    fn forward(&self, z: &Tensor, train: bool) -> Tensor {
        let x = z.view([-1, REP_DIM / 16, 4, 4]);
        let x = up2(&leaky(&x, self.slope));
        let x = apply(&self.deconv1, &x);
        let x = up2(&leaky(&apply_bn(&self.bn3, &x, train), self.slope));
        let x = apply(&self.deconv2, &x);
        let x = up2(&leaky(&apply_bn(&self.bn4, &x, train), self.slope));
        apply(&self.deconv3, &x).sigmoid()
    }
}
