//! Element-wise activations beyond Burn's set, and a selector used by configurable blocks.

use burn::tensor::{activation, backend::Backend, Tensor};

/// `x · σ(1.702 x)`, the activation of OpenAI / OpenCLIP `quickgelu` text towers.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * activation::sigmoid(x * 1.702)
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`: PyTorch's `gelu(approximate="tanh")`,
/// Hugging Face's `gelu_new` (T5 v1.1's gated feed-forward, FLUX's MLPs).
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let inner =
        (x.clone() + x.clone().powi_scalar(3) * 0.044715) * (2.0 / std::f64::consts::PI).sqrt();
    x * (activation::tanh(inner) + 1.0) * 0.5
}

/// `min(max(x, 0), 6)`, the activation of the ArcFace ViT MLP.
pub fn relu6<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clamp(0.0, 6.0)
}

/// Activation of an MLP, named as in the reference configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · σ(1.702 x)`.
    QuickGelu,
    /// Exact (erf) GELU.
    Gelu,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// Applies the activation.
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::QuickGelu => quick_gelu(x),
            Activation::Gelu => activation::gelu(x),
            Activation::Relu => activation::relu(x),
            Activation::Relu6 => relu6(x),
        }
    }
}
