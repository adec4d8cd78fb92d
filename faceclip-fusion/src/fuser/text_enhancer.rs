//! The text enhancer (`text_layers.{i}`): a post-norm DETR encoder layer over the text states,
//! positions added to queries and keys only, no mask (pads attend and are attended).

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{load_layer_norm, load_linear, Linear, PackedMultiheadAttention};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

/// ```text
/// q = k = l + pos;  l = norm1(l + MHA(q, k, l));  l = norm2(l + linear2(relu(linear1(l))))
/// ```
#[derive(Module, Debug)]
pub struct TextEnhancerLayer<B: Backend> {
    self_attn: PackedMultiheadAttention<B>,
    linear1: Linear<B>,
    linear2: Linear<B>,
    norm1: LayerNorm<B>,
    norm2: LayerNorm<B>,
}

impl<B: Backend> TextEnhancerLayer<B> {
    /// Loads `self_attn.{in_proj_weight,in_proj_bias,out_proj}`, `linear1`, `linear2`, `norm1`, `norm2`.
    pub fn load(
        vb: &Weights<B>,
        d_model: usize,
        heads: usize,
        ffn: usize,
        eps: f64,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            self_attn: PackedMultiheadAttention::load(&vb.pp("self_attn"), d_model, heads)?,
            linear1: load_linear(&vb.pp("linear1"), d_model, ffn, true)?,
            linear2: load_linear(&vb.pp("linear2"), ffn, d_model, true)?,
            norm1: load_layer_norm(&vb.pp("norm1"), d_model, eps)?,
            norm2: load_layer_norm(&vb.pp("norm2"), d_model, eps)?,
        })
    }

    /// `(l [B, T, d], pos [B or 1, T, d]) -> [B, T, d]`.
    pub fn forward(&self, l: Tensor<B, 3>, pos: Tensor<B, 3>) -> Tensor<B, 3> {
        let qk = l.clone() + pos;
        let attended = self.self_attn.forward(qk.clone(), qk, l.clone());
        self.post_norm(l, attended)
    }

    /// The layer's own attention (packed `nn.MultiheadAttention`).
    pub(crate) fn attention(&self) -> &PackedMultiheadAttention<B> {
        &self.self_attn
    }

    /// Everything after the attention: `x = norm1(x + attended)`, then
    /// `norm2(x + linear2(relu(linear1(x))))`.
    pub(crate) fn post_norm(&self, x: Tensor<B, 3>, attended: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = self.norm1.forward(x + attended);
        let ffn = self.linear2.forward(relu(self.linear1.forward(x.clone())));
        self.norm2.forward(x + ffn)
    }
}
