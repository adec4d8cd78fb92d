//! Group normalisation with an optional fused SiLU, on a fused kernel where the backend has one.

use burn::nn::GroupNorm;
use burn::tensor::{activation, backend::Backend, Tensor};

use crate::backend::fused_group_norm;

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
    let x = match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) if norm.affine => {
            match fused_group_norm(
                (x, gamma.val(), beta.val()),
                norm.num_groups,
                norm.epsilon,
                silu,
            ) {
                Ok(output) => return output,
                Err((x, _, _)) => x,
            }
        }
        _ => x,
    };
    let y = norm.forward(x);
    if silu {
        activation::silu(y)
    } else {
        y
    }
}
