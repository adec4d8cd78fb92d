//! diffusers' `Transformer2DModel` as SDXL uses it: group norm, input projection, a stack of
//! `BasicTransformerBlock`s (self-attention, cross-attention, GEGLU feed-forward, each pre-norm
//! with a residual), output projection and the residual around the whole.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::GroupNorm;
use burn::tensor::activation::gelu;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{
    conv_forward, group_norm, load_layer_norm, load_linear, merge_heads, sdpa, split_heads, Linear,
    PackedLinear,
};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

use crate::blocks::{load_conv, load_group_norm};

/// Group-norm epsilon of `Transformer2DModel` (fixed in diffusers).
const GROUP_NORM_EPS: f64 = 1e-6;
/// Layer-norm epsilon of `BasicTransformerBlock` (diffusers' default `norm_eps`).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Sizes of one `Transformer2DModel`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransformerSpec {
    /// Channels in and out (`heads × head_dim`).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Number of `BasicTransformerBlock`s.
    pub layers: usize,
    /// Width of the text context.
    pub context_dim: usize,
    /// Group-norm groups.
    pub groups: usize,
    /// Linear (`true`, SDXL) or 1×1-convolution input/output projections.
    pub linear_projection: bool,
}

/// diffusers' `Attention` as self-attention: bias-free `to_q/to_k/to_v` packed into one
/// projection (one GEMM), biased `to_out.0`.
#[derive(Module, Debug)]
struct SelfAttention<B: Backend> {
    to_qkv: PackedLinear<B>,
    to_out: Linear<B>,
    heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    fn load(vb: &Weights<B>, dim: usize, heads: usize) -> Result<Self, LoadError> {
        Ok(Self {
            to_qkv: PackedLinear::load(vb, ["to_q", "to_k", "to_v"], dim, [dim; 3], false)?,
            to_out: load_linear(&vb.pp("to_out").pp(0), dim, dim, true)?,
            heads,
        })
    }

    /// Queries, keys and values from `x [batch, n, dim]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [q, k, v] = self.to_qkv.forward(x);
        multi_head_attention([q, k, v], self.heads, &self.to_out)
    }
}

/// One cross-attention's keys and values of a text context, `[batch, tokens, channels]` each.
pub(crate) type KeysValues<B> = [Tensor<B, 3>; 2];

/// diffusers' `Attention` as cross-attention: bias-free `to_q`, `to_k/to_v` packed into one
/// projection of the context, biased `to_out.0`.
#[derive(Module, Debug)]
struct CrossAttention<B: Backend> {
    to_q: Linear<B>,
    to_kv: PackedLinear<B>,
    to_out: Linear<B>,
    heads: usize,
}

impl<B: Backend> CrossAttention<B> {
    fn load(
        vb: &Weights<B>,
        dim: usize,
        context_dim: usize,
        heads: usize,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            to_q: load_linear(&vb.pp("to_q"), dim, dim, false)?,
            to_kv: PackedLinear::load(vb, ["to_k", "to_v"], context_dim, [dim; 2], false)?,
            to_out: load_linear(&vb.pp("to_out").pp(0), dim, dim, true)?,
            heads,
        })
    }

    /// The keys and values of `context [batch, m, context_dim]`, `[batch, m, dim]` each.
    fn keys_values(&self, context: &Tensor<B, 3>) -> KeysValues<B> {
        self.to_kv.forward(context.clone())
    }

    /// Queries from `x [batch, n, dim]`, keys and values from [`keys_values`](Self::keys_values).
    fn forward(&self, x: Tensor<B, 3>, [k, v]: &KeysValues<B>) -> Tensor<B, 3> {
        let q = self.to_q.forward(x);
        multi_head_attention([q, k.clone(), v.clone()], self.heads, &self.to_out)
    }
}

/// Attention of projected `[batch, tokens, heads·head_dim]` queries, keys and values over
/// `heads` heads, the heads merged back and projected by `to_out`.
fn multi_head_attention<B: Backend>(
    qkv: [Tensor<B, 3>; 3],
    heads: usize,
    to_out: &Linear<B>,
) -> Tensor<B, 3> {
    let [q, k, v] = qkv.map(|t| split_heads(t, heads));
    to_out.forward(merge_heads(sdpa(
        q,
        k,
        v,
        AttentionModuleOptions::default(),
    )))
}

/// The GEGLU feed-forward: `net.2(hidden · gelu(gate))` with `[hidden, gate] = net.0.proj(x)`.
#[derive(Module, Debug)]
struct GegluFeedForward<B: Backend> {
    proj: Linear<B>,
    out: Linear<B>,
    inner: usize,
}

impl<B: Backend> GegluFeedForward<B> {
    fn load(vb: &Weights<B>, dim: usize) -> Result<Self, LoadError> {
        let inner = 4 * dim;
        Ok(Self {
            proj: load_linear(&vb.pp("net.0.proj"), dim, 2 * inner, true)?,
            out: load_linear(&vb.pp("net.2"), inner, dim, true)?,
            inner,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.proj.forward(x);
        let [b, n, _] = h.dims();
        let hidden = h.clone().slice([0..b, 0..n, 0..self.inner]);
        let gate = h.slice([0..b, 0..n, self.inner..2 * self.inner]);
        self.out.forward(hidden * gelu(gate))
    }
}

/// `BasicTransformerBlock`: pre-norm self-attention, cross-attention and GEGLU feed-forward.
#[derive(Module, Debug)]
struct BasicTransformerBlock<B: Backend> {
    norm1: LayerNorm<B>,
    attn1: SelfAttention<B>,
    norm2: LayerNorm<B>,
    attn2: CrossAttention<B>,
    norm3: LayerNorm<B>,
    ff: GegluFeedForward<B>,
}

impl<B: Backend> BasicTransformerBlock<B> {
    fn load(vb: &Weights<B>, spec: &TransformerSpec) -> Result<Self, LoadError> {
        let c = spec.channels;
        Ok(Self {
            norm1: load_layer_norm(&vb.pp("norm1"), c, LAYER_NORM_EPS)?,
            attn1: SelfAttention::load(&vb.pp("attn1"), c, spec.heads)?,
            norm2: load_layer_norm(&vb.pp("norm2"), c, LAYER_NORM_EPS)?,
            attn2: CrossAttention::load(&vb.pp("attn2"), c, spec.context_dim, spec.heads)?,
            norm3: load_layer_norm(&vb.pp("norm3"), c, LAYER_NORM_EPS)?,
            ff: GegluFeedForward::load(&vb.pp("ff"), c)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, keys_values: &KeysValues<B>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn1.forward(self.norm1.forward(x));
        let x = x.clone() + self.attn2.forward(self.norm2.forward(x), keys_values);
        x.clone() + self.ff.forward(self.norm3.forward(x))
    }
}

/// An input or output projection: `Linear` on tokens or a 1×1 convolution on the map.
#[derive(Module, Debug)]
enum Projection<B: Backend> {
    Linear(Linear<B>),
    Conv(Conv2d<B>),
}

impl<B: Backend> Projection<B> {
    fn load(vb: &Weights<B>, channels: usize, linear: bool) -> Result<Self, LoadError> {
        Ok(if linear {
            Self::Linear(load_linear(vb, channels, channels, true)?)
        } else {
            Self::Conv(load_conv(vb, [channels, channels], 1, 1, [0; 4])?)
        })
    }
}

/// `Transformer2DModel` over a `[batch, channels, h, w]` map with a text context.
#[derive(Module, Debug)]
pub(crate) struct Transformer2D<B: Backend> {
    norm: GroupNorm<B>,
    proj_in: Projection<B>,
    blocks: Vec<BasicTransformerBlock<B>>,
    proj_out: Projection<B>,
}

impl<B: Backend> Transformer2D<B> {
    /// Loads `norm`, `proj_in`, `transformer_blocks.*`, `proj_out` from `vb`.
    pub(crate) fn load(vb: &Weights<B>, spec: &TransformerSpec) -> Result<Self, LoadError> {
        let c = spec.channels;
        Ok(Self {
            norm: load_group_norm(&vb.pp("norm"), spec.groups, c, GROUP_NORM_EPS)?,
            proj_in: Projection::load(&vb.pp("proj_in"), c, spec.linear_projection)?,
            blocks: (0..spec.layers)
                .map(|i| BasicTransformerBlock::load(&vb.pp("transformer_blocks").pp(i), spec))
                .collect::<Result<_, _>>()?,
            proj_out: Projection::load(&vb.pp("proj_out"), c, spec.linear_projection)?,
        })
    }

    /// Every block's cross-attention keys and values of `context [batch, tokens,
    /// context_dim]`, in block order: what [`forward`](Self::forward) attends to.
    pub(crate) fn keys_values(&self, context: &Tensor<B, 3>) -> Vec<KeysValues<B>> {
        self.blocks
            .iter()
            .map(|block| block.attn2.keys_values(context))
            .collect()
    }

    /// Applies the transformer, each block attending to its entry of `keys_values` (from
    /// [`keys_values`](Self::keys_values)).
    pub(crate) fn forward(&self, x: Tensor<B, 4>, keys_values: &[KeysValues<B>]) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let to_tokens = |m: Tensor<B, 4>| m.reshape([b, c, h * w]).swap_dims(1, 2);
        let to_map = |t: Tensor<B, 3>| t.swap_dims(1, 2).reshape([b, c, h, w]);
        let normed = group_norm(&self.norm, x.clone());
        let mut tokens = match &self.proj_in {
            Projection::Linear(linear) => linear.forward(to_tokens(normed)),
            Projection::Conv(conv) => to_tokens(conv_forward(conv, normed)),
        };
        debug_assert_eq!(keys_values.len(), self.blocks.len());
        for (block, keys_values) in self.blocks.iter().zip(keys_values) {
            tokens = block.forward(tokens, keys_values);
        }
        let out = match &self.proj_out {
            Projection::Linear(linear) => to_map(linear.forward(tokens)),
            Projection::Conv(conv) => conv_forward(conv, to_map(tokens)),
        };
        out + x
    }
}
