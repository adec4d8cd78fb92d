//! Element-wise activations beyond Burn's set, and a selector used by configurable blocks.

use burn::tensor::{activation, backend::Backend, Tensor};

/// `x · σ(1.702 x)`, the activation of OpenAI / OpenCLIP `quickgelu` text towers.
pub fn quick_gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * activation::sigmoid(x * 1.702)
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
