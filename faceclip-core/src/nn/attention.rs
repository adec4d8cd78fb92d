//! PyTorch `nn.MultiheadAttention` with its packed `in_proj_weight` layout (batch-first).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};

use super::load_linear;
use crate::error::LoadError;
use crate::weights::Weights;

/// Multi-head attention with PyTorch's packed projection: rows `0..w` of `in_proj_weight`
/// project queries, `w..2w` keys, `2w..3w` values; heads are contiguous channel blocks
/// (`channel = head · head_dim + j`); scale `head_dim^-0.5`.
#[derive(Module, Debug)]
pub struct PackedMultiheadAttention<B: Backend> {
    /// Packed q/k/v weight in Burn layout `[w, 3w]`.
    pub in_proj_weight: Param<Tensor<B, 2>>,
    /// Packed q/k/v bias `[3w]`.
    pub in_proj_bias: Param<Tensor<B, 1>>,
    /// Output projection `w -> w`.
    pub out_proj: Linear<B>,
    /// Number of heads.
    pub heads: usize,
}

impl<B: Backend> PackedMultiheadAttention<B> {
    /// Loads `in_proj_weight [3w, w]`, `in_proj_bias [3w]`, `out_proj.{weight,bias}`.
    pub fn load(vb: &Weights<B>, width: usize, heads: usize) -> Result<Self, LoadError> {
        if heads == 0 || !width.is_multiple_of(heads) {
            return Err(LoadError::Config(format!(
                "{}: width {width} is not divisible by {heads} heads",
                vb.prefix()
            )));
        }
        Ok(Self {
            in_proj_weight: Param::from_tensor(vb.linear_weight(
                "in_proj_weight",
                width,
                3 * width,
            )?),
            in_proj_bias: Param::from_tensor(vb.tensor("in_proj_bias", [3 * width])?),
            out_proj: load_linear(&vb.pp("out_proj"), width, width, true)?,
            heads,
        })
    }

    /// Loads separate projections — `q_proj`, `k_proj`, `v_proj`, `out_proj` (each `.weight
    /// [w, w]` and `.bias [w]`, the Hugging Face CLIP layout) — and packs them.
    pub fn load_split(vb: &Weights<B>, width: usize, heads: usize) -> Result<Self, LoadError> {
        if heads == 0 || !width.is_multiple_of(heads) {
            return Err(LoadError::Config(format!(
                "{}: width {width} is not divisible by {heads} heads",
                vb.prefix()
            )));
        }
        let mut weights = Vec::with_capacity(3);
        let mut biases = Vec::with_capacity(3);
        for name in ["q_proj", "k_proj", "v_proj"] {
            let p = vb.pp(name);
            weights.push(p.linear_weight("weight", width, width)?);
            biases.push(p.tensor("bias", [width])?);
        }
        Ok(Self {
            in_proj_weight: Param::from_tensor(Tensor::cat(weights, 1)),
            in_proj_bias: Param::from_tensor(Tensor::cat(biases, 0)),
            out_proj: load_linear(&vb.pp("out_proj"), width, width, true)?,
            heads,
        })
    }

    /// Self-attention `[batch, seq, w] -> [batch, seq, w]`; `causal` masks keys after the query.
    pub fn forward_self(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [_, _, w] = x.dims();
        let qkv = x.matmul(self.in_proj_weight.val().unsqueeze_dim(0))
            + self.in_proj_bias.val().unsqueeze_dims(&[0, 1]);
        let q = qkv.clone().narrow(2, 0, w);
        let k = qkv.clone().narrow(2, w, w);
        let v = qkv.narrow(2, 2 * w, w);
        self.attend(q, k, v, causal)
    }

    /// Attention with separate query/key/value inputs (DETR style: `q = k = x + pos`, `v = x`).
    pub fn forward(
        &self,
        query: Tensor<B, 3>,
        key: Tensor<B, 3>,
        value: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let [_, _, w] = query.dims();
        let weight = self.in_proj_weight.val();
        let bias = self.in_proj_bias.val();
        let project = |x: Tensor<B, 3>, i: usize| {
            x.matmul(weight.clone().narrow(1, i * w, w).unsqueeze_dim(0))
                + bias.clone().narrow(0, i * w, w).unsqueeze_dims(&[0, 1])
        };
        let (q, k, v) = (project(query, 0), project(key, 1), project(value, 2));
        self.attend(q, k, v, false)
    }

    fn attend(
        &self,
        q: Tensor<B, 3>,
        k: Tensor<B, 3>,
        v: Tensor<B, 3>,
        causal: bool,
    ) -> Tensor<B, 3> {
        let [b, s, w] = q.dims();
        let split = |t: Tensor<B, 3>| {
            let [_, len, _] = t.dims();
            t.reshape([b, len, self.heads, w / self.heads])
                .swap_dims(1, 2)
        };
        let options = AttentionModuleOptions {
            is_causal: causal,
            ..Default::default()
        };
        let out = attention(split(q), split(k), split(v), None, None, options);
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([b, s, w]))
    }
}
