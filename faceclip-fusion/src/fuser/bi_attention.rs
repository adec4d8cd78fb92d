//! GroundingDINO's bi-directional attention block (`fusion_layers.{i}`): face patches attend
//! to text and text attends to face patches through one shared score matrix, and each stream
//! adds its update to its *normalised* input scaled by a learned per-channel gate.

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{
    load_layer_norm, load_linear, merge_heads, split_heads, Linear, PackedLinear,
};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

/// Bound applied to the shifted scores, as in the reference (it never binds in f32 practice).
const SCORE_CLAMP: f64 = 50_000.0;

/// ```text
/// v̂ = LN_v(v), l̂ = LN_l(l)
/// S  = (v_proj(v̂)·d^-½)·l_proj(l̂)ᵀ            per head, [Nv, Nl]
/// S  = clamp(S − max S, ±5e4)                  (max over the whole tensor)
/// v ← v̂ + γ_v ⊙ out_v_proj(softmax_l(S) · values_l_proj(l̂))
/// l ← l̂ + γ_l ⊙ out_l_proj(softmax_v(clamp(Sᵀ − rowmax Sᵀ, ±5e4)) · values_v_proj(v̂))
/// ```
#[derive(Module, Debug)]
pub struct BiAttentionBlock<B: Backend> {
    layer_norm_v: LayerNorm<B>,
    layer_norm_l: LayerNorm<B>,
    gamma_v: Param<Tensor<B, 1>>,
    gamma_l: Param<Tensor<B, 1>>,
    /// `v_proj` and `values_v_proj` (both read `v̂`) as one GEMM.
    v_projs: PackedLinear<B>,
    /// `l_proj` and `values_l_proj` (both read `l̂`) as one GEMM.
    l_projs: PackedLinear<B>,
    out_v_proj: Linear<B>,
    out_l_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> BiAttentionBlock<B> {
    /// Loads `layer_norm_{v,l}`, `gamma_{v,l} [d]` and `attn.{v,l,values_v,values_l,out_v,out_l}_proj`.
    pub fn load(
        vb: &Weights<B>,
        d_model: usize,
        embed: usize,
        heads: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        if heads == 0 || !embed.is_multiple_of(heads) {
            return Err(LoadError::Config(format!(
                "bi-attention embed {embed} is not divisible by {heads} heads"
            )));
        }
        let attn = vb.pp("attn");
        Ok(Self {
            layer_norm_v: load_layer_norm(&vb.pp("layer_norm_v"), d_model, eps)?,
            layer_norm_l: load_layer_norm(&vb.pp("layer_norm_l"), d_model, eps)?,
            gamma_v: Param::from_tensor(vb.tensor("gamma_v", [d_model])?),
            gamma_l: Param::from_tensor(vb.tensor("gamma_l", [d_model])?),
            v_projs: PackedLinear::load(
                &attn,
                ["v_proj", "values_v_proj"],
                d_model,
                [embed; 2],
                true,
            )?,
            l_projs: PackedLinear::load(
                &attn,
                ["l_proj", "values_l_proj"],
                d_model,
                [embed; 2],
                true,
            )?,
            out_v_proj: load_linear(&attn.pp("out_v_proj"), embed, d_model, true)?,
            out_l_proj: load_linear(&attn.pp("out_l_proj"), embed, d_model, true)?,
            heads,
        })
    }

    /// `(v [B, Nv, d], l [B, Nl, d]) -> (v [B, Nv, d], l [B, Nl, d])`.
    pub fn forward(&self, v: Tensor<B, 3>, l: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let v = self.layer_norm_v.forward(v);
        let l = self.layer_norm_l.forward(l);
        let head_dim = self.v_projs.widths[0] / self.heads;
        let split = |t: Tensor<B, 3>| split_heads(t, self.heads);

        let [query, values_v] = self.v_projs.forward(v.clone()).map(split);
        let [key, values_l] = self.l_projs.forward(l.clone()).map(split);
        let query = query * (head_dim as f64).powf(-0.5);

        let scores = query.matmul(key.swap_dims(2, 3));
        let scores = (scores.clone() - scores.max().unsqueeze()).clamp(-SCORE_CLAMP, SCORE_CLAMP);
        let scores_t = scores.clone().swap_dims(2, 3);
        let scores_t = (scores_t.clone() - scores_t.max_dim(3)).clamp(-SCORE_CLAMP, SCORE_CLAMP);

        let delta_v = self
            .out_v_proj
            .forward(merge_heads(softmax(scores, 3).matmul(values_l)));
        let delta_l = self
            .out_l_proj
            .forward(merge_heads(softmax(scores_t, 3).matmul(values_v)));
        let gate = |g: &Param<Tensor<B, 1>>| g.val().unsqueeze_dims::<3>(&[0, 1]);
        (
            v + delta_v * gate(&self.gamma_v),
            l + delta_l * gate(&self.gamma_l),
        )
    }
}
