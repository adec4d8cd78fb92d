//! Normalisation layers that run as fused CubeCL kernels where the backend has them
//! ([`crate::backend::fused_group_norm`], [`crate::backend::fused_row_norm`]) and as Burn ops
//! elsewhere.

use burn::module::{Module, Param};
use burn::nn::GroupNorm;
use burn::tensor::{activation, backend::Backend, Tensor};

use crate::backend::{fused_group_norm, fused_row_norm};

/// `norm(x)` for `x` of shape `[batch, channels, spatial…]`: Burn's [`GroupNorm`], computed by
/// the fused CubeCL kernels (statistics in one read, then one normalising pass) on the CubeCL
/// aliases of [`crate::backend`] when the norm is affine, and by Burn's ops elsewhere.
pub fn group_norm<B: Backend, const D: usize>(
    norm: &GroupNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    group_norm_activation(norm, x, false)
}

/// `silu(norm(x))`, the pre-activation of diffusers' ResNet blocks and output heads; where
/// [`group_norm`] fuses, the SiLU is applied in its normalising pass.
pub fn group_norm_silu<B: Backend, const D: usize>(
    norm: &GroupNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    group_norm_activation(norm, x, true)
}

fn group_norm_activation<B: Backend, const D: usize>(
    norm: &GroupNorm<B>,
    x: Tensor<B, D>,
    silu: bool,
) -> Tensor<B, D> {
    if let (Some(gamma), Some(beta), true) = (&norm.gamma, &norm.beta, norm.affine) {
        let (gamma, beta) = (gamma.val(), beta.val());
        if let Some(y) = fused_group_norm(&x, &gamma, &beta, norm.num_groups, norm.epsilon, silu) {
            return y;
        }
    }
    let y = norm.forward(x);
    if silu {
        activation::silu(y)
    } else {
        y
    }
}

/// PyTorch's `nn.LayerNorm` over the last axis (`weight`, optional `bias`), one fused kernel
/// on the CubeCL backends. Use it instead of Burn's `LayerNorm`, whose ε is not readable.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// The scale `[width]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// The shift `[width]`, if any.
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Normalises `x [..., width]` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(Param::val);
        if let Some(y) = fused_row_norm(&x, &gamma, beta.as_ref(), self.epsilon, true) {
            return y;
        }
        let y = normalise_last_axis(x, self.epsilon) * gamma.unsqueeze::<D>();
        match beta {
            Some(beta) => y + beta.unsqueeze::<D>(),
            None => y,
        }
    }
}

/// `(x − μ)/√(σ² + ε)` over the last axis (biased variance), in Burn's ops.
fn normalise_last_axis<B: Backend, const D: usize>(x: Tensor<B, D>, epsilon: f64) -> Tensor<B, D> {
    let centred = x.clone() - x.mean_dim(D - 1);
    let variance = centred.clone().powi_scalar(2).mean_dim(D - 1);
    centred / variance.add_scalar(epsilon).sqrt()
}

/// LayerNorm without parameters over the last axis of `x [batch, tokens, width]`, then
/// `·(1 + scale) + shift` with per-sample `scale`, `shift` `[batch, width]`: the modulation of
/// FLUX's (and DiT's) `AdaLayerNorm` blocks, one fused kernel on the CubeCL backends.
pub fn modulated_layer_norm<B: Backend>(
    x: Tensor<B, 3>,
    shift: &Tensor<B, 2>,
    scale: &Tensor<B, 2>,
    epsilon: f64,
) -> Tensor<B, 3> {
    let gain = scale.clone() + 1.0;
    if let Some(y) = fused_row_norm(&x, &gain, Some(shift), epsilon, true) {
        return y;
    }
    normalise_last_axis(x, epsilon) * gain.unsqueeze_dim(1) + shift.clone().unsqueeze_dim(1)
}
