//! PyTorch `nn.MultiheadAttention` with its packed `in_proj_weight` layout (batch-first).

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};

use super::{linear, load_linear, Linear};
#[cfg(doc)]
use crate::backend::set_cuda_attention;
use crate::backend::{
    cuda_attention, fused_attention, fused_batched_matmul, is_cuda, CudaAttention,
    FUSED_ATTENTION_MAX_HEAD_DIM,
};
use crate::error::LoadError;
use crate::weights::Weights;

/// The query-length multiple that Burn 0.21's CUDA flash-attention kernels (cubek 0.2) need:
/// they process queries in stages of 16-row tiles times 2, 4 or 8 planes and refuse any other
/// length, so autotune falls back to the unfused kernel — on 2026-11-26 (H100, bf16) 23× slower
/// than PyTorch at the SDXL UNet's 3888 tokens. 128 is a multiple of every stage size.
pub const FLASH_QUERY_BLOCK: usize = 128;

/// Softmax attention `softmax(q kᵀ · scale) v` over `[batch, heads, tokens, head_dim]` without
/// mask or bias, as [`attention`]. Other backends go straight to [`attention`]; on Burn's CUDA
/// backend it takes the path [`set_cuda_attention`] chose:
/// - `Cudnn` (the default): cuDNN's fused attention ([`fused_attention`]: bf16/f16 operands,
///   cuDNN 9 installed, causal or not); heads wider than [`FUSED_ATTENTION_MAX_HEAD_DIM`] (not
///   causal) as [`attention_unfused`]; anything else as `Flash`.
/// - `Flash`: Burn's attention with the query length padded to a multiple of
///   [`FLASH_QUERY_BLOCK`] (causal attention is not padded), as only such lengths reach its
///   flash kernels; the padded query rows are zeros and are cut from the output, so the result
///   does not change (each query row is independent).
/// - `CublasLt`: [`attention_unfused`] for non-causal attention, anything else as `Flash`.
pub fn sdpa<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    if !is_cuda::<B>(&q.device()) {
        return attention(q, k, v, None, None, options);
    }
    match cuda_attention() {
        CudaAttention::CublasLt if !options.is_causal && options.softcap.is_none() => {
            return attention_unfused(q, k, v, options.scale)
        }
        CudaAttention::Cudnn => {
            if let Some(out) = fused_attention(&q, &k, &v, options) {
                return out;
            }
            // Heads wider than cuDNN's fused kernels take (the VAE's one 512-wide head).
            if q.dims()[3] > FUSED_ATTENTION_MAX_HEAD_DIM
                && !options.is_causal
                && options.softcap.is_none()
            {
                return attention_unfused(q, k, v, options.scale);
            }
        }
        _ => {}
    }
    attention_padded_queries(q, k, v, options, FLASH_QUERY_BLOCK)
}

/// `[batch, tokens, heads·head_dim]` as `[batch, heads, tokens, head_dim]`, heads being
/// contiguous channel blocks (a view: no data moves).
pub fn split_heads<B: Backend>(t: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, tokens, channels] = t.dims();
    t.reshape([batch, tokens, heads, channels / heads.max(1)])
        .swap_dims(1, 2)
}

/// `[batch, heads, tokens, head_dim]` back to `[batch, tokens, heads·head_dim]`, the inverse
/// of [`split_heads`].
pub fn merge_heads<B: Backend>(t: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, tokens, head_dim] = t.dims();
    t.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim])
}

/// The most score bytes [`attention_unfused`] materialises at once; longer query sequences are
/// processed in blocks of rows that fit (PyTorch's math attention has no such bound).
pub const MAX_SCORE_BYTES: usize = 256 << 20;

/// `softmax(q kᵀ · scale) v` over `[batch, heads, tokens, head_dim]` (no mask, not causal;
/// `scale` defaults to `head_dim^-½`) as two [`batched_matmul`]s around a softmax, the scores
/// materialised — at most [`MAX_SCORE_BYTES`] of them at a time, the queries taken in blocks
/// of rows: on CUDA the products are strided batched cuBLASLt GEMMs, `kᵀ` read in place.
/// PyTorch's "math" attention.
pub fn attention_unfused<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    scale: Option<f64>,
) -> Tensor<B, 4> {
    let [batch, heads, _, _] = q.dims();
    let keys = k.dims()[2];
    let row_bytes = batch * heads * keys * q.dtype().size();
    let rows = MAX_SCORE_BYTES / row_bytes.max(1);
    attention_unfused_in_blocks(q, k, v, scale, rows)
}

/// The factor on `q·kᵀ`: `scale`, by default `head_dim^-½` (PyTorch's and Burn's rule).
pub(crate) fn attention_scale(scale: Option<f64>, head_dim: usize) -> f32 {
    scale.unwrap_or(1.0 / (head_dim as f64).sqrt()) as f32
}

/// [`attention_unfused`] with the queries taken `rows` at a time (at least one).
fn attention_unfused_in_blocks<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    scale: Option<f64>,
    rows: usize,
) -> Tensor<B, 4> {
    let [batch, heads, tokens, head_dim] = q.dims();
    let [_, _, keys, value_dim] = v.dims();
    let scale = attention_scale(scale, head_dim);
    let matrices = batch * heads;
    let k = k.reshape([matrices, keys, head_dim]).swap_dims(1, 2);
    let v = v.reshape([matrices, keys, value_dim]);
    let q = q.reshape([matrices, tokens, head_dim]);
    let attend = |q: Tensor<B, 3>| {
        let scores = batched_matmul(q, k.clone(), scale);
        batched_matmul(softmax(scores, 2), v.clone(), 1.0)
    };
    let rows = rows.max(1);
    let out = if tokens <= rows {
        attend(q)
    } else {
        let blocks = (0..tokens)
            .step_by(rows)
            .map(|start| attend(q.clone().narrow(1, start, rows.min(tokens - start))))
            .collect();
        Tensor::cat(blocks, 1)
    };
    out.reshape([batch, heads, tokens, value_dim])
}

/// `scale · lhs·rhs` for `[batch, m, k]` and `[batch, k, n]`: one strided batched cuBLASLt
/// GEMM where [`fused_batched_matmul`] takes it, Burn's matmul elsewhere.
pub fn batched_matmul<B: Backend>(
    lhs: Tensor<B, 3>,
    rhs: Tensor<B, 3>,
    scale: f32,
) -> Tensor<B, 3> {
    if let Some(product) = fused_batched_matmul(&lhs, &rhs, scale) {
        return product;
    }
    let product = lhs.matmul(rhs);
    if scale == 1.0 {
        product
    } else {
        product.mul_scalar(scale)
    }
}

/// [`sdpa`]'s padding on any backend: the query length is rounded up to a multiple of `block`
/// with zero rows, which are removed from the result. Not for causal attention (the padded
/// rows would shift the causal diagonal); `block` 0 or 1 means no padding.
pub fn attention_padded_queries<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    options: AttentionModuleOptions,
    block: usize,
) -> Tensor<B, 4> {
    let [batch, heads, tokens, head_dim] = q.dims();
    let missing = if block > 1 {
        tokens.next_multiple_of(block) - tokens
    } else {
        0
    };
    if missing == 0 || options.is_causal {
        return attention(q, k, v, None, None, options);
    }
    let zeros = Tensor::zeros([batch, heads, missing, head_dim], &q.device());
    let padded = Tensor::cat(vec![q, zeros], 2);
    attention(padded, k, v, None, None, options).narrow(2, 0, tokens)
}

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
        let weights = ["q_proj.weight", "k_proj.weight", "v_proj.weight"];
        let biases = ["q_proj.bias", "k_proj.bias", "v_proj.bias"];
        Ok(Self {
            in_proj_weight: Param::from_tensor(vb.linear_weights_concat(
                &weights,
                width,
                &[width; 3],
            )?),
            in_proj_bias: Param::from_tensor(vb.tensors_concat(&biases, &[width; 3])?),
            out_proj: load_linear(&vb.pp("out_proj"), width, width, true)?,
            heads,
        })
    }

    /// Self-attention `[batch, seq, w] -> [batch, seq, w]`; `causal` masks keys after the query.
    pub fn forward_self(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [_, _, w] = x.dims();
        let qkv = linear(
            x,
            &self.in_proj_weight.val(),
            Some(&self.in_proj_bias.val()),
        );
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
            linear(
                x,
                &weight.clone().narrow(1, i * w, w),
                Some(&bias.clone().narrow(0, i * w, w)),
            )
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
        let [q, k, v] = [q, k, v].map(|t| split_heads(t, self.heads));
        let options = AttentionModuleOptions {
            is_causal: causal,
            ..Default::default()
        };
        self.out_proj.forward(merge_heads(sdpa(q, k, v, options)))
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::{
        attention_padded_queries, attention_unfused, attention_unfused_in_blocks, batched_matmul,
        merge_heads, sdpa, split_heads,
    };
    use crate::backend::NdArray;
    use crate::parity::{relative_l2, to_vec};
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Distribution, Tensor};

    fn random(shape: [usize; 4]) -> Tensor<NdArray, 4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Queries `[2, 3, 37, 8]`, keys `[2, 3, 21, 8]` and values `[2, 3, 21, value_dim]`: a query
    /// length no block size divides, fewer keys than queries.
    fn qkv(value_dim: usize) -> [Tensor<NdArray, 4>; 3] {
        [
            random([2, 3, 37, 8]),
            random([2, 3, 21, 8]),
            random([2, 3, 21, value_dim]),
        ]
    }

    /// Padding the queries to a block multiple changes nothing but the work done.
    #[test]
    fn padded_queries_give_the_unpadded_result() {
        let [q, k, v] = qkv(8);
        let options = AttentionModuleOptions {
            scale: Some(0.3),
            ..Default::default()
        };
        let plain = attention(q.clone(), k.clone(), v.clone(), None, None, options);
        for block in [0, 1, 16, 37, 128] {
            let padded = attention_padded_queries(q.clone(), k.clone(), v.clone(), options, block);
            assert_eq!(padded.dims(), [2, 3, 37, 8], "block {block}");
            let err = relative_l2(&to_vec(padded), &to_vec(plain.clone()));
            assert!(err < 1e-6, "block {block}: relative L2 {err:e}");
        }
        // Off CUDA, sdpa is Burn's attention itself.
        let err = relative_l2(&to_vec(sdpa(q, k, v, options)), &to_vec(plain));
        assert_eq!(err, 0.0);
    }

    /// The unfused form (two batched products around a softmax) is attention; the products
    /// take a transposed right operand and a scale.
    #[test]
    fn unfused_attention_is_attention() {
        let [q, k, v] = qkv(6);
        for scale in [None, Some(0.3)] {
            let options = AttentionModuleOptions {
                scale,
                ..Default::default()
            };
            let fused = attention(q.clone(), k.clone(), v.clone(), None, None, options);
            let unfused = attention_unfused(q.clone(), k.clone(), v.clone(), scale);
            let err = relative_l2(&to_vec(unfused), &to_vec(fused));
            assert!(err < 1e-5, "scale {scale:?}: relative L2 {err:e}");
        }
        let lhs =
            Tensor::<NdArray, 3>::from_floats([[[1.0, 2.0]], [[3.0, 4.0]]], &Default::default());
        let rhs =
            Tensor::<NdArray, 3>::from_floats([[[1.0, 0.0]], [[0.0, 1.0]]], &Default::default());
        let product = batched_matmul(lhs, rhs.swap_dims(1, 2), 2.0);
        assert_eq!(to_vec(product), [2.0, 8.0]);
    }

    /// Taking the queries in blocks of rows (to bound the scores' memory) changes nothing but
    /// the work's order, whatever the block size.
    #[test]
    fn unfused_attention_in_blocks_is_attention() {
        let [q, k, v] = qkv(6);
        let options = AttentionModuleOptions::default();
        let expected = to_vec(attention(
            q.clone(),
            k.clone(),
            v.clone(),
            None,
            None,
            options,
        ));
        for rows in [0, 1, 5, 36, 37, 100] {
            let blocks = attention_unfused_in_blocks(q.clone(), k.clone(), v.clone(), None, rows);
            assert_eq!(blocks.dims(), [2, 3, 37, 6], "rows {rows}");
            let err = relative_l2(&to_vec(blocks), &expected);
            assert!(err < 1e-5, "rows {rows}: relative L2 {err:e}");
        }
    }

    /// Heads are contiguous channel blocks, and merging undoes splitting.
    #[test]
    fn heads_split_into_channel_blocks_and_merge_back() {
        let values: Vec<f32> = (0..2 * 3 * 6).map(|v| v as f32).collect();
        let t = Tensor::<NdArray, 3>::from_data(
            burn::tensor::TensorData::new(values.clone(), [2, 3, 6]),
            &Default::default(),
        );
        let heads = split_heads(t, 2);
        assert_eq!(heads.dims(), [2, 2, 3, 3]);
        // Sample 1, head 1, token 2: channels 3..6 of row (1, 2).
        let row = heads.clone().slice([1..2, 1..2, 2..3, 0..3]);
        assert_eq!(to_vec(row), [33.0, 34.0, 35.0]);
        assert_eq!(to_vec(merge_heads(heads)), values);
    }

    /// Causal attention is never padded (the padding would move the causal diagonal).
    #[test]
    fn causal_attention_is_not_padded() {
        let (q, k, v) = (
            random([1, 2, 10, 4]),
            random([1, 2, 10, 4]),
            random([1, 2, 10, 4]),
        );
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let plain = attention(q.clone(), k.clone(), v.clone(), None, None, options);
        let padded = attention_padded_queries(q, k, v, options, 16);
        assert_eq!(relative_l2(&to_vec(padded), &to_vec(plain)), 0.0);
    }
}
