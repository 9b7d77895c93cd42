//! Adam (Kingma & Ba, 2015) in tensor ops, bit for bit the same as libtorch's `torch::optim::Adam`
//! (torch/csrc/api/src/optim/adam.cpp, non-amsgrad, L2 weight decay), whose state it can export and
//! import, so training can stop at an epoch boundary and resume with the same bytes.
//!
//! Per parameter p with gradient g (parameters without a gradient are skipped), as adam.cpp does:
//!
//! ```text
//! step += 1;  bc1 = 1 - beta1^step;  bc2 = 1 - beta2^step           (f64, pow from libm)
//! g = g.add(p, wd)                              if wd != 0           (fused: g + wd*p, one rounding)
//! exp_avg    = exp_avg.mul(beta1).add(g, 1 - beta1)                  (fused multiply-add)
//! exp_avg_sq = exp_avg_sq.mul(beta2).addcmul(g, g, 1 - beta2)        (fused: v + ((1-beta2)*g)*g)
//! denom = exp_avg_sq.sqrt() / sqrt(bc2) + eps
//! p = p.addcdiv(exp_avg, denom, -lr / bc1)                           (p + ((-lr/bc1)*exp_avg)/denom)
//! ```
//!
//! libtorch's CPU kernels evaluate the scaled `add` and `addcmul` with a fused multiply-add (one
//! rounding); tch exposes neither `alpha` nor `value`, so those three steps go through
//! [`fma_f32`], an exactly rounded float32 fused multiply-add built from float64 tensor ops.

use std::collections::BTreeMap;

use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::{Error, Result};

/// Prefix of the exported state's tensor names (`adam.exp_avg.<variable>`, ...).
pub const STATE_PREFIX: &str = "adam.";

/// Moments of one parameter, created at its first step with a gradient (as adam.cpp does).
struct ParamState {
    step: i64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam over the trainable variables of a [`nn::VarStore`]: betas (0.9, 0.999), eps 1e-8,
/// L2 weight decay added to the gradient (not decoupled), as `tch::nn::Adam { wd, ..Default::default() }`.
pub struct Adam {
    /// Trainable variables (`requires_grad`), sorted by name.
    params: Vec<(String, Tensor)>,
    state: Vec<Option<ParamState>>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Only its `zero_grad` is used: libtorch's `Optimizer::zero_grad` resets gradients to
    /// undefined (not to zero), exactly as tch's `backward_step` does before `backward`.
    grads: nn::Optimizer,
}

impl Adam {
    /// Adam over every trainable variable of `vs` (those that require a gradient at this call);
    /// `lr` is the learning rate, `weight_decay` the L2 coefficient (>= 0).
    pub fn new(vs: &nn::VarStore, lr: f64, weight_decay: f64) -> Result<Self> {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let state = params.iter().map(|_| None).collect();
        let grads = nn::Sgd::default().build(vs, 0.0)?;
        Ok(Adam { params, state, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, grads })
    }

    /// Sets the learning rate of the following steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Resets every parameter's gradient to undefined (libtorch `zero_grad(set_to_none = true)`).
    pub fn zero_grad(&mut self) {
        self.grads.zero_grad();
    }

    /// `zero_grad`, `loss.backward()`, `step`: tch's `Optimizer::backward_step`.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
        self.step();
    }

    /// One Adam update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let (beta1, beta2) = (self.beta1, self.beta2);
        tch::no_grad(|| {
            for ((_, p), slot) in self.params.iter().zip(self.state.iter_mut()) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let st = slot.get_or_insert_with(|| ParamState { step: 0, exp_avg: p.zeros_like(), exp_avg_sq: p.zeros_like() });
                st.step += 1;
                // std::pow(double, int64) in adam.cpp is pow(double, double) from libm.
                let bias_correction1 = 1.0 - beta1.powf(st.step as f64);
                let bias_correction2 = 1.0 - beta2.powf(st.step as f64);
                let grad = if self.weight_decay != 0.0 { fma_f32(p, &scalar_f32(self.weight_decay), &grad) } else { grad };
                st.exp_avg = fma_f32(&grad, &scalar_f32(1.0 - beta1), &(&st.exp_avg * beta1));
                st.exp_avg_sq = fma_f32(&(&grad * (1.0 - beta2)), &grad, &(&st.exp_avg_sq * beta2));
                let denom = st.exp_avg_sq.sqrt() / bias_correction2.sqrt() + self.eps;
                let step_size = self.lr / bias_correction1;
                let updated = p + (&st.exp_avg * -step_size) / denom;
                p.shallow_clone().copy_(&updated);
            }
        });
    }

    /// The state as named CPU tensors: per stepped variable `adam.exp_avg.<name>`,
    /// `adam.exp_avg_sq.<name>` (float32, the variable's shape) and `adam.step.<name>` (int64, [1]).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((name, _), st) in self.params.iter().zip(&self.state) {
            if let Some(st) = st {
                out.push((format!("{STATE_PREFIX}exp_avg.{name}"), st.exp_avg.to_device(tch::Device::Cpu)));
                out.push((format!("{STATE_PREFIX}exp_avg_sq.{name}"), st.exp_avg_sq.to_device(tch::Device::Cpu)));
                out.push((format!("{STATE_PREFIX}step.{name}"), Tensor::from_slice(&[st.step])));
            }
        }
        out
    }

    /// Restores a state written by [`Adam::state_tensors`] (other names are ignored). Errors when a
    /// moment's shape or dtype differs from its variable's, or a moment lacks its step.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        let mut state = Vec::with_capacity(self.params.len());
        for (name, p) in &self.params {
            let key = |what: &str| format!("{STATE_PREFIX}{what}.{name}");
            let Some(step) = tensors.get(&key("step")) else {
                if tensors.contains_key(&key("exp_avg")) {
                    return Err(Error::Data(format!("optimizer state of `{name}` has moments but no `{}`", key("step"))));
                }
                state.push(None);
                continue;
            };
            let step = match (step.kind(), step.numel()) {
                (Kind::Int64, 1) => step.int64_value(&[0]),
                _ => return Err(Error::Data(format!("`{}` must be one int64", key("step")))),
            };
            let moment = |what: &str| -> Result<Tensor> {
                let k = key(what);
                let t = tensors.get(&k).ok_or_else(|| Error::Data(format!("no tensor `{k}`")))?;
                if t.size() != p.size() || t.kind() != p.kind() {
                    return Err(Error::Data(format!("`{k}` is {:?} {:?}, the variable is {:?} {:?}", t.kind(), t.size(), p.kind(), p.size())));
                }
                Ok(t.to_device(p.device()).copy())
            };
            state.push(Some(ParamState { step, exp_avg: moment("exp_avg")?, exp_avg_sq: moment("exp_avg_sq")? }));
        }
        self.state = state;
        Ok(())
    }
}

/// A float32 scalar tensor holding `x` rounded to float32, as libtorch's kernels convert a Scalar.
fn scalar_f32(x: f64) -> Tensor {
    Tensor::from(x as f32)
}

/// a * b + c for float32 tensors (broadcasting) with ONE rounding to float32, as a hardware fused
/// multiply-add. The product of two float32 values is exact in float64; the sum is computed in
/// float64 with its exact error (TwoSum, Knuth) and rounded to odd, which makes the final rounding
/// to float32 (24 <= 53 - 2 bits) correct (Boldo & Melquiond, "Emulation of FMA and correctly
/// rounded sums: proved algorithms using rounding to odd", IEEE TC 2008).
pub fn fma_f32(a: &Tensor, b: &Tensor, c: &Tensor) -> Tensor {
    let (a, b, c) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double), c.to_kind(Kind::Double));
    let p = a * b;
    let s = &p + &c;
    let p_approx = &s - &c;
    let c_approx = &s - &p_approx;
    let err = (&p - &p_approx) + (&c - &c_approx);
    // Round to odd: an inexact sum with an even last bit moves one ulp toward the exact value.
    let even = s.view_dtype(Kind::Int64).bitwise_and(1).eq(0);
    let inexact = err.ne(0.0);
    let toward = s.nextafter(&(&err * f64::INFINITY));
    toward.where_self(&inexact.logical_and(&even), &s).to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn check_fma(a: &[f32], b: &[f32], c: &[f32]) {
        let got = Vec::<f32>::try_from(fma_f32(&Tensor::from_slice(a), &Tensor::from_slice(b), &Tensor::from_slice(c))).unwrap();
        for i in 0..a.len() {
            let want = a[i].mul_add(b[i], c[i]);
            assert_eq!(got[i].to_bits(), want.to_bits(), "fma({}, {}, {}) = {} not {}", a[i], b[i], c[i], got[i], want);
        }
    }

    #[test]
    fn fma_is_exactly_rounded_including_double_rounding_cases() {
        // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is a float32 tie; a tiny c decides the direction, which
        // a plain float64 sum then float32 rounding gets wrong.
        let a = 1.0f32 + 2f32.powi(-12);
        let tiny = 2f32.powi(-100);
        let naive = ((a as f64) * (a as f64) + tiny as f64) as f32;
        assert_ne!(naive.to_bits(), a.mul_add(a, tiny).to_bits(), "the case must defeat a float64 sum rounded to float32");
        check_fma(&[a, a, a, -a, a], &[a, a, a, a, -a], &[tiny, -tiny, 0.0, tiny, -tiny]);
        let mut rng = crate::rng::Rng::new(5);
        let mut v = || ((rng.uniform() - 0.5) * 2f64.powi((rng.uniform() * 60.0) as i32 - 30)) as f32;
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..20_000 {
            a.push(v());
            b.push(v());
            c.push(v());
        }
        check_fma(&a, &b, &c);
        check_fma(&[0.0, -0.0, 0.0], &[1.0, 1.0, -1.0], &[-0.0, 0.0, -0.0]);
    }

    /// Random parameters and gradients over many magnitudes, against tch's Adam, step by step.
    #[test]
    fn matches_libtorch_adam_on_random_gradients() {
        tch::set_num_threads(1);
        for wd in [0.0, 0.5e-3] {
            let n = 10_007;
            let vs = nn::VarStore::new(Device::Cpu);
            let p = vs.root().var("p", &[n], nn::Init::Const(0.0));
            let vs2 = nn::VarStore::new(Device::Cpu);
            let q = vs2.root().var("p", &[n], nn::Init::Const(0.0));
            let mut rng = crate::rng::Rng::new(9);
            let init: Vec<f32> = (0..n).map(|_| (rng.uniform() - 0.5) as f32).collect();
            tch::no_grad(|| {
                p.shallow_clone().copy_(&Tensor::from_slice(&init));
                q.shallow_clone().copy_(&Tensor::from_slice(&init));
            });
            let mut theirs = nn::Adam { wd, ..Default::default() }.build(&vs, 1e-3).unwrap();
            let mut ours = Adam::new(&vs2, 1e-3, wd).unwrap();
            for step in 1..=30 {
                let lr = if step > 15 { 1e-4 } else { 1e-3 };
                theirs.set_lr(lr);
                ours.set_lr(lr);
                let g: Vec<f32> = (0..n).map(|_| ((rng.uniform() - 0.5) * 2f64.powi(-((rng.uniform() * 20.0) as i32))) as f32).collect();
                let g = Tensor::from_slice(&g);
                theirs.backward_step(&(&p * &g).sum(Kind::Float));
                ours.backward_step(&(&q * &g).sum(Kind::Float));
                assert!(p.equal(&q), "wd {wd}: parameters differ after step {step}");
            }
        }
    }
}
