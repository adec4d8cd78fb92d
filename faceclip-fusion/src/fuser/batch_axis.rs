//! FaceT5's image-side fuser layer: a post-norm DETR encoder layer (`nn.MultiheadAttention`,
//! batch-second) that the reference feeds batch-first face tokens `[B, 144, d]`. PyTorch then
//! reads the batch axis as the sequence, so every face token attends only to the same token of
//! the other samples in the batch (spec §7.2, quirk 2); positions never reach it (quirk 1).
//! With `B = 1`, as the reference runs, the attention is `out_proj(W_v·x + b_v)` per token.

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

use super::TextEnhancerLayer;

/// ```text
/// a = MHA over the batch axis(v);  v = norm1(v + a);  v = norm2(v + linear2(relu(linear1(v))))
/// ```
/// The same post-norm DETR layer (and keys) as [`TextEnhancerLayer`], attending differently.
#[derive(Module, Debug)]
pub struct BatchAxisEncoderLayer<B: Backend> {
    layer: TextEnhancerLayer<B>,
}

impl<B: Backend> BatchAxisEncoderLayer<B> {
    /// Loads `self_attn.{in_proj_weight,in_proj_bias,out_proj}`, `linear1`, `linear2`, `norm1`,
    /// `norm2` (the `nn.TransformerEncoderLayer` names).
    pub fn load(
        vb: &Weights<B>,
        d_model: usize,
        heads: usize,
        ffn: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            layer: TextEnhancerLayer::load(vb, d_model, heads, ffn, eps)?,
        })
    }

    /// `[B, N, d] -> [B, N, d]`, attention across `B` for each of the `N` tokens.
    pub fn forward(&self, v: Tensor<B, 3>) -> Tensor<B, 3> {
        let attended = self
            .layer
            .attention()
            .forward_self(v.clone().swap_dims(0, 1), false)
            .swap_dims(0, 1);
        self.layer.post_norm(v, attended)
    }
}
