//! Building blocks of diffusers' VAE and UNet with diffusers' key names: group norm, the ResNet
//! block, single-head spatial self-attention and 2× resampling.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::{
    conv_forward, group_norm, group_norm_silu, load_conv2d, load_linear, sdpa, Linear,
};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

/// `nn.GroupNorm(groups, channels, eps)`: keys `weight`, `bias`.
pub fn load_group_norm<B: Backend>(
    vb: &Weights<B>,
    groups: usize,
    channels: usize,
    eps: f64,
) -> Result<GroupNorm<B>, LoadError> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        return Err(LoadError::Config(format!(
            "{channels} channels cannot be split into {groups} groups ({})",
            vb.prefix()
        )));
    }
    Ok(GroupNorm {
        gamma: Some(Param::from_tensor(vb.tensor("weight", [channels])?)),
        beta: Some(Param::from_tensor(vb.tensor("bias", [channels])?)),
        num_groups: groups,
        num_channels: channels,
        epsilon: eps,
        affine: true,
    })
}

/// A square convolution with bias and the given stride and padding (top, left, bottom, right).
pub fn load_conv<B: Backend>(
    vb: &Weights<B>,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: [usize; 4],
) -> Result<Conv2d<B>, LoadError> {
    let mut conv = load_conv2d(vb, channels, kernel, stride, true)?;
    let [top, left, bottom, right] = padding;
    conv.padding = PaddingConfig2d::Explicit(top, left, bottom, right);
    Ok(conv)
}

/// A 3×3, stride-1, same-size convolution.
pub fn load_conv3<B: Backend>(
    vb: &Weights<B>,
    channels: [usize; 2],
) -> Result<Conv2d<B>, LoadError> {
    load_conv(vb, channels, 3, 1, [1; 4])
}

/// diffusers' `ResnetBlock2D`: `x + conv2(silu(norm2(conv1(silu(norm1(x))) + t)))`, where `t` is
/// the projected time embedding (UNet only), with a 1×1 `conv_shortcut` when the width changes.
#[derive(Module, Debug)]
pub struct ResnetBlock2D<B: Backend> {
    norm1: GroupNorm<B>,
    conv1: Conv2d<B>,
    time_emb_proj: Option<Linear<B>>,
    norm2: GroupNorm<B>,
    conv2: Conv2d<B>,
    shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2D<B> {
    /// Loads `norm1, conv1, norm2, conv2[, conv_shortcut]` from `vb` (the VAE's blocks, no time
    /// embedding).
    pub fn load(
        vb: &Weights<B>,
        c_in: usize,
        c_out: usize,
        groups: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        Self::load_with_time(vb, [c_in, c_out], None, groups, eps)
    }

    /// Loads the block; with `time_dim`, also `time_emb_proj` (`Linear(time_dim, c_out)`).
    pub fn load_with_time(
        vb: &Weights<B>,
        [c_in, c_out]: [usize; 2],
        time_dim: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: load_group_norm(&vb.pp("norm1"), groups, c_in, eps)?,
            conv1: load_conv3(&vb.pp("conv1"), [c_in, c_out])?,
            time_emb_proj: time_dim
                .map(|t| load_linear(&vb.pp("time_emb_proj"), t, c_out, true))
                .transpose()?,
            norm2: load_group_norm(&vb.pp("norm2"), groups, c_out, eps)?,
            conv2: load_conv3(&vb.pp("conv2"), [c_out, c_out])?,
            shortcut: if c_in != c_out {
                Some(load_conv(
                    &vb.pp("conv_shortcut"),
                    [c_in, c_out],
                    1,
                    1,
                    [0; 4],
                )?)
            } else {
                None
            },
        })
    }

    /// Applies the block to `[batch, c_in, h, w]` (blocks without a time projection).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with_time(x, None)
    }

    /// Applies the block; `time` is `silu(temb)` `[batch, time_dim]`, used when the block has a
    /// time projection.
    pub fn forward_with_time(&self, x: Tensor<B, 4>, time: Option<&Tensor<B, 2>>) -> Tensor<B, 4> {
        let mut h = conv_forward(&self.conv1, group_norm_silu(&self.norm1, x.clone()));
        if let (Some(proj), Some(time)) = (&self.time_emb_proj, time) {
            let [b, c] = [h.dims()[0], h.dims()[1]];
            h = h + proj.forward(time.clone()).reshape([b, c, 1, 1]);
        }
        let h = conv_forward(&self.conv2, group_norm_silu(&self.norm2, h));
        let skip = match &self.shortcut {
            Some(conv) => conv_forward(conv, x),
            None => x,
        };
        skip + h
    }
}

/// diffusers' `Attention` as the VAE mid block uses it: group norm, one head over all channels,
/// biased `to_q/to_k/to_v/to_out.0`, residual connection.
#[derive(Module, Debug)]
pub struct SpatialSelfAttention<B: Backend> {
    group_norm: GroupNorm<B>,
    to_q: Linear<B>,
    to_k: Linear<B>,
    to_v: Linear<B>,
    to_out: Linear<B>,
}

impl<B: Backend> SpatialSelfAttention<B> {
    /// Loads the attention of `channels` width from `vb`.
    pub fn load(
        vb: &Weights<B>,
        channels: usize,
        groups: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        let c = channels;
        Ok(Self {
            group_norm: load_group_norm(&vb.pp("group_norm"), groups, c, eps)?,
            to_q: load_linear(&vb.pp("to_q"), c, c, true)?,
            to_k: load_linear(&vb.pp("to_k"), c, c, true)?,
            to_v: load_linear(&vb.pp("to_v"), c, c, true)?,
            to_out: load_linear(&vb.pp("to_out").pp(0), c, c, true)?,
        })
    }

    /// Applies the attention to `[batch, channels, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let tokens = group_norm(&self.group_norm, x.clone())
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let head = |t: Tensor<B, 3>| t.unsqueeze_dim::<4>(1);
        let out = sdpa(
            head(self.to_q.forward(tokens.clone())),
            head(self.to_k.forward(tokens.clone())),
            head(self.to_v.forward(tokens)),
            AttentionModuleOptions::default(),
        );
        let out = self.to_out.forward(out.squeeze_dim::<3>(1));
        out.swap_dims(1, 2).reshape([b, c, h, w]) + x
    }
}

/// Nearest-neighbour 2× upsampling (`F.interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample_nearest_2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// Checks that every level width splits into `groups` group-norm groups.
pub(crate) fn check_groups(block_out_channels: &[usize], groups: usize) -> Result<(), String> {
    if groups == 0 || block_out_channels.iter().any(|c| !c.is_multiple_of(groups)) {
        return Err(format!(
            "block_out_channels {block_out_channels:?} must be multiples of norm_num_groups {groups}"
        ));
    }
    Ok(())
}
