//! Linear, LayerNorm, RMSNorm, Conv2d and eval-mode BatchNorm1d built from PyTorch-named weights.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{backend::Backend, Tensor};

use super::norm::LayerNorm;
use crate::backend::{fused_conv2d, fused_row_norm};
use crate::error::LoadError;
use crate::nn::Linear;
use crate::weights::Weights;

/// A PyTorch `nn.Linear(d_in, d_out)`: keys `weight [d_out, d_in]` and optionally `bias [d_out]`.
pub fn load_linear<B: Backend>(
    vb: &Weights<B>,
    d_in: usize,
    d_out: usize,
    bias: bool,
) -> Result<Linear<B>, LoadError> {
    let weight = Param::from_tensor(vb.linear_weight("weight", d_in, d_out)?);
    let bias = if bias {
        Some(Param::from_tensor(vb.tensor("bias", [d_out])?))
    } else {
        None
    };
    Ok(Linear { weight, bias })
}

/// A PyTorch `nn.LayerNorm(dim, eps)`: keys `weight`, `bias`.
pub fn load_layer_norm<B: Backend>(
    vb: &Weights<B>,
    dim: usize,
    eps: f64,
) -> Result<LayerNorm<B>, LoadError> {
    Ok(LayerNorm {
        gamma: Param::from_tensor(vb.tensor("weight", [dim])?),
        beta: Some(Param::from_tensor(vb.tensor("bias", [dim])?)),
        epsilon: eps,
    })
}

/// A PyTorch `nn.Conv2d` without padding: keys `weight [out, in, k, k]` and `bias [out]`.
pub fn load_conv2d<B: Backend>(
    vb: &Weights<B>,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    bias: bool,
) -> Result<Conv2d<B>, LoadError> {
    let [c_in, c_out] = channels;
    Ok(Conv2d {
        weight: Param::from_tensor(vb.tensor("weight", [c_out, c_in, kernel, kernel])?),
        bias: if bias {
            Some(Param::from_tensor(vb.tensor("bias", [c_out])?))
        } else {
            None
        },
        stride: [stride, stride],
        kernel_size: [kernel, kernel],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Valid,
    })
}

/// Runs `conv`: on cuDNN where [`fused_conv2d`] takes it (Burn's CUDA backend, symmetric
/// padding); otherwise a 1×1, stride-1, ungrouped convolution runs as a matrix product, and
/// every other one as Burn's convolution. Model code runs every `Conv2d` through here.
///
/// Besides being the natural form of a pointwise convolution, the matrix product avoids wrong
/// results of Burn 0.21's wgpu convolution for 1×1 kernels on large feature maps (measured on
/// lavapipe: relative error 0.8 at 256×256, 8 → 16 channels; exact at 32×24; upstream reports
/// tracel-ai/burn#5626 and tracel-ai/cubek#519).
pub fn conv_forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        // `Same` (sized from the input) and one-sided padding stay with Burn.
        _ => None,
    };
    if let Some(padding) = padding {
        let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
        let bias = conv.bias.as_ref().map(|b| b.val());
        if let Some(y) = fused_conv2d(&x, &conv.weight.val(), bias.as_ref(), &options) {
            return y;
        }
    }
    let pointwise = conv.kernel_size == [1, 1]
        && conv.stride == [1, 1]
        && conv.groups == 1
        && conv.padding == PaddingConfig2d::Explicit(0, 0, 0, 0);
    if !pointwise {
        return conv.forward(x);
    }
    let [n, c, h, w] = x.dims();
    let [o, ..] = conv.weight.dims();
    let weight = conv.weight.val().reshape([1, o, c]).expand([n, o, c]);
    let y = weight
        .matmul(x.reshape([n, c, h * w]))
        .reshape([n, o, h, w]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, o, 1, 1]),
        None => y,
    }
}

/// PyTorch `nn.BatchNorm1d` in eval mode: `(x − running_mean) / √(running_var + eps) · weight + bias`.
#[derive(Module, Debug)]
pub struct BatchNorm1dEval<B: Backend> {
    /// Learned scale `[dim]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Learned shift `[dim]`.
    pub bias: Param<Tensor<B, 1>>,
    /// Running mean `[dim]`.
    pub running_mean: Param<Tensor<B, 1>>,
    /// Running variance `[dim]`.
    pub running_var: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl<B: Backend> BatchNorm1dEval<B> {
    /// Loads keys `weight`, `bias`, `running_mean`, `running_var` (all `[dim]`).
    pub fn load(vb: &Weights<B>, dim: usize, eps: f64) -> Result<Self, LoadError> {
        Ok(Self {
            weight: Param::from_tensor(vb.tensor("weight", [dim])?),
            bias: Param::from_tensor(vb.tensor("bias", [dim])?),
            running_mean: Param::from_tensor(vb.tensor("running_mean", [dim])?),
            running_var: Param::from_tensor(vb.tensor("running_var", [dim])?),
            eps,
        })
    }

    /// `[batch, dim] -> [batch, dim]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let scale = self.weight.val() / (self.running_var.val() + self.eps).sqrt();
        let shift = self.bias.val() - self.running_mean.val() * scale.clone();
        x * scale.unsqueeze_dim(0) + shift.unsqueeze_dim(0)
    }
}

/// RMS normalisation over the last axis with a learned scale and no bias or mean subtraction:
/// `w · x / √(mean(x²) + ε)` (T5's `T5LayerNorm`, diffusers' `RMSNorm`).
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// The scale `[dim]`.
    pub weight: Param<Tensor<B, 1>>,
    /// ε added to the mean square.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Loads `weight [dim]`.
    pub fn load(vb: &Weights<B>, dim: usize, eps: f64) -> Result<Self, LoadError> {
        Ok(Self {
            weight: Param::from_tensor(vb.tensor("weight", [dim])?),
            eps,
        })
    }

    /// Normalises `x [..., dim]` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let weight = self.weight.val();
        if let Some(y) = fused_row_norm(&x, &weight, None, self.eps, false) {
            return y;
        }
        let rms = x
            .clone()
            .powi_scalar(2)
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt();
        (x / rms) * weight.unsqueeze::<D>()
    }
}
