//! CLIP text towers as FaceCLIP uses them — OpenCLIP `TextTransformer` key names, or Hugging
//! Face `CLIPTextModel` ones (FLUX's `text_encoder`): final-layer states after the final
//! LayerNorm, the EOT-pooled vector, and a hook that overwrites token embeddings (the identity
//! token) before positions are added.

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{backend::Backend, Bool, Int, Tensor};
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{
    load_layer_norm, load_linear, Activation, Linear, PackedMultiheadAttention,
};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

use crate::token_ids::check_vocabulary;

/// Shape and activation of an OpenCLIP text tower.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTowerConfig {
    /// Vocabulary size (49408 for CLIP).
    pub vocab_size: usize,
    /// Sequence length (77 for CLIP).
    pub context_length: usize,
    /// Model width `w`.
    pub width: usize,
    /// Number of residual blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_width: usize,
    /// MLP activation.
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Whether `text_projection [w, w_out]` is loaded (FaceCLIP ignores it; OpenCLIP layout
    /// only).
    pub projection_dim: Option<usize>,
    /// Checkpoint key names.
    pub layout: TextLayout,
}

/// Key names of a text tower checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLayout {
    /// OpenCLIP `TextTransformer`: `token_embedding.weight`, `positional_embedding`,
    /// `transformer.resblocks.{i}.{ln_1,attn.in_proj_weight,…,mlp.c_fc,mlp.c_proj}`, `ln_final`.
    OpenClip,
    /// Hugging Face `CLIPTextModel`: `text_model.embeddings.{token,position}_embedding.weight`,
    /// `text_model.encoder.layers.{i}.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,
    /// mlp.fc1,mlp.fc2}`, `text_model.final_layer_norm`.
    HuggingFace,
}

impl TextTowerConfig {
    /// OpenCLIP `ViT-L-14-quickgelu` text tower (FaceCLIP's L branch): 768 wide, 12 layers,
    /// 12 heads, QuickGELU.
    pub fn vit_l_14_quickgelu() -> Self {
        Self::sized(768, 12, 12, Activation::QuickGelu)
    }

    /// OpenCLIP `ViT-bigG-14` text tower (FaceCLIP's G branch): 1280 wide, 32 layers, 20 heads,
    /// exact GELU.
    pub fn vit_bigg_14() -> Self {
        Self::sized(1280, 32, 20, Activation::Gelu)
    }

    /// OpenAI CLIP ViT-L/14's text model in the Hugging Face layout (FLUX.1's `text_encoder`):
    /// 768 wide, 12 layers, 12 heads, QuickGELU.
    pub fn clip_vit_l_14_hf() -> Self {
        Self {
            layout: TextLayout::HuggingFace,
            ..Self::sized(768, 12, 12, Activation::QuickGelu)
        }
    }

    /// A CLIP-vocabulary tower of any size (MLP 4w, eps 1e-5, no projection, OpenCLIP layout).
    pub fn sized(width: usize, layers: usize, heads: usize, activation: Activation) -> Self {
        Self {
            vocab_size: 49408,
            context_length: 77,
            width,
            layers,
            heads,
            mlp_width: 4 * width,
            activation,
            eps: 1e-5,
            projection_dim: None,
            layout: TextLayout::OpenClip,
        }
    }

    /// Checks the configuration is buildable.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.width == 0 || self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return Err(LoadError::Config(format!(
                "text width {} must be a positive multiple of heads {}",
                self.width, self.heads
            )));
        }
        if self.vocab_size == 0 || self.context_length == 0 || self.mlp_width == 0 {
            return Err(LoadError::Config(
                "text vocab, context and MLP sizes must be positive".into(),
            ));
        }
        if self.layout == TextLayout::HuggingFace && self.projection_dim.is_some() {
            return Err(LoadError::Config(
                "a Hugging Face CLIPTextModel has no text_projection".into(),
            ));
        }
        Ok(())
    }
}

/// Pre-LN residual block: `x += attn(ln_1(x))`, `x += c_proj(act(c_fc(ln_2(x))))`.
#[derive(Module, Debug)]
pub struct TextBlock<B: Backend> {
    ln_1: LayerNorm<B>,
    attn: PackedMultiheadAttention<B>,
    ln_2: LayerNorm<B>,
    c_fc: Linear<B>,
    c_proj: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> TextBlock<B> {
    fn load(vb: &Weights<B>, c: &TextTowerConfig) -> Result<Self, LoadError> {
        if c.layout == TextLayout::HuggingFace {
            return Ok(Self {
                ln_1: load_layer_norm(&vb.pp("layer_norm1"), c.width, c.eps)?,
                attn: PackedMultiheadAttention::load_split(&vb.pp("self_attn"), c.width, c.heads)?,
                ln_2: load_layer_norm(&vb.pp("layer_norm2"), c.width, c.eps)?,
                c_fc: load_linear(&vb.pp("mlp").pp("fc1"), c.width, c.mlp_width, true)?,
                c_proj: load_linear(&vb.pp("mlp").pp("fc2"), c.mlp_width, c.width, true)?,
                activation: c.activation,
            });
        }
        Ok(Self {
            ln_1: load_layer_norm(&vb.pp("ln_1"), c.width, c.eps)?,
            attn: PackedMultiheadAttention::load(&vb.pp("attn"), c.width, c.heads)?,
            ln_2: load_layer_norm(&vb.pp("ln_2"), c.width, c.eps)?,
            c_fc: load_linear(&vb.pp("mlp").pp("c_fc"), c.width, c.mlp_width, true)?,
            c_proj: load_linear(&vb.pp("mlp").pp("c_proj"), c.mlp_width, c.width, true)?,
            activation: c.activation,
        })
    }

    /// `[batch, seq, w] -> [batch, seq, w]`, causal.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward_self(self.ln_1.forward(x), true);
        let h = self.c_proj.forward(
            self.activation
                .forward(self.c_fc.forward(self.ln_2.forward(x.clone()))),
        );
        x + h
    }
}

/// Token embeddings to overwrite before positions are added: wherever `mask[b, t]` is true,
/// the embedding of token `t` of sample `b` becomes `embeddings[b]` (FaceCLIP's identity token).
#[derive(Debug, Clone)]
pub struct TokenOverride<B: Backend> {
    /// `[batch, seq]`: which positions to overwrite.
    pub mask: Tensor<B, 2, Bool>,
    /// `[batch, w]`: the replacement embedding of each sample.
    pub embeddings: Tensor<B, 2>,
}

/// Outputs of a text tower.
#[derive(Debug, Clone)]
pub struct TextOutput<B: Backend> {
    /// `[batch, seq, w]`: final-layer states after `ln_final`.
    pub hidden: Tensor<B, 3>,
    /// `[batch, w]`: the state at the first occurrence of the largest id (the EOT), no projection.
    pub pooled: Tensor<B, 2>,
}

/// A CLIP text transformer, loaded from OpenCLIP or Hugging Face key names ([`TextLayout`]).
#[derive(Module, Debug)]
pub struct TextTower<B: Backend> {
    token_embedding: Param<Tensor<B, 2>>,
    positional_embedding: Param<Tensor<B, 2>>,
    blocks: Vec<TextBlock<B>>,
    ln_final: LayerNorm<B>,
    text_projection: Option<Param<Tensor<B, 2>>>,
    #[module(skip)]
    config: TextTowerConfig,
}

impl<B: Backend> TextTower<B> {
    /// Builds the tower from `vb` (a checkpoint scope or random weights): the scope holding
    /// `token_embedding` (OpenCLIP) or `text_model` (Hugging Face).
    pub fn load(vb: &Weights<B>, config: TextTowerConfig) -> Result<Self, LoadError> {
        config.validate()?;
        if config.layout == TextLayout::HuggingFace {
            return Self::load_hf(&vb.pp("text_model"), config);
        }
        let c = &config;
        let blocks = (0..c.layers)
            .map(|i| TextBlock::load(&vb.pp("transformer").pp("resblocks").pp(i), c))
            .collect::<Result<Vec<_>, _>>()?;
        let text_projection = match c.projection_dim {
            Some(dim) => Some(Param::from_tensor(
                vb.tensor("text_projection", [c.width, dim])?,
            )),
            None => None,
        };
        Ok(Self {
            token_embedding: Param::from_tensor(
                vb.pp("token_embedding")
                    .tensor("weight", [c.vocab_size, c.width])?,
            ),
            positional_embedding: Param::from_tensor(
                vb.tensor("positional_embedding", [c.context_length, c.width])?,
            ),
            blocks,
            ln_final: load_layer_norm(&vb.pp("ln_final"), c.width, c.eps)?,
            text_projection,
            config,
        })
    }

    fn load_hf(vb: &Weights<B>, config: TextTowerConfig) -> Result<Self, LoadError> {
        let c = &config;
        let embeddings = vb.pp("embeddings");
        let blocks = (0..c.layers)
            .map(|i| TextBlock::load(&vb.pp("encoder").pp("layers").pp(i), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            token_embedding: Param::from_tensor(
                embeddings
                    .pp("token_embedding")
                    .tensor("weight", [c.vocab_size, c.width])?,
            ),
            positional_embedding: Param::from_tensor(
                embeddings
                    .pp("position_embedding")
                    .tensor("weight", [c.context_length, c.width])?,
            ),
            blocks,
            ln_final: load_layer_norm(&vb.pp("final_layer_norm"), c.width, c.eps)?,
            text_projection: None,
            config,
        })
    }

    /// The configuration the tower was built with.
    pub fn config(&self) -> &TextTowerConfig {
        &self.config
    }

    /// The learned positional embedding `[context, w]` (FaceCLIP projects it for the fuser).
    pub fn positional_embedding(&self) -> Tensor<B, 2> {
        self.positional_embedding.val()
    }

    /// Encodes `[batch, seq]` token ids (`seq ≤ context`), optionally overwriting token embeddings.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        token_override: Option<&TokenOverride<B>>,
    ) -> Result<TextOutput<B>, InputError> {
        let [batch, seq] = ids.dims();
        self.check_ids(&ids)?;
        let mut x = embedding(self.token_embedding.val(), ids.clone());
        if let Some(o) = token_override {
            let w = self.config.width;
            if o.mask.dims() != [batch, seq] || o.embeddings.dims() != [batch, w] {
                return Err(InputError::Shape {
                    what: "token override".into(),
                    expected: format!("mask [{batch}, {seq}] and embeddings [{batch}, {w}]"),
                    found: [o.mask.dims().to_vec(), o.embeddings.dims().to_vec()].concat(),
                });
            }
            let replacement = o
                .embeddings
                .clone()
                .unsqueeze_dim::<3>(1)
                .expand([batch, seq, w]);
            x = x.mask_where(
                o.mask.clone().unsqueeze_dim::<3>(2).expand([batch, seq, w]),
                replacement,
            );
        }
        x = x + self
            .positional_embedding
            .val()
            .narrow(0, 0, seq)
            .unsqueeze_dim(0);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let hidden = self.ln_final.forward(x);
        let pooled = pool_first_max(hidden.clone(), ids);
        Ok(TextOutput { hidden, pooled })
    }

    /// `pooled @ text_projection` when the tower was built with a projection.
    pub fn project(&self, pooled: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        self.text_projection
            .as_ref()
            .map(|p| pooled.matmul(p.val()))
    }

    fn check_ids(&self, ids: &Tensor<B, 2, Int>) -> Result<(), InputError> {
        let [batch, seq] = ids.dims();
        if batch == 0 || seq == 0 || seq > self.config.context_length {
            return Err(InputError::Shape {
                what: "token ids".into(),
                expected: format!("[batch ≥ 1, 1..={}]", self.config.context_length),
                found: vec![batch, seq],
            });
        }
        check_vocabulary(ids, self.config.vocab_size, "token id")
    }
}

/// Picks `hidden[b, t_b]` where `t_b` is the first position of the largest id in row `b`
/// (PyTorch `argmax` semantics, which OpenCLIP uses to find the EOT token).
fn pool_first_max<B: Backend>(hidden: Tensor<B, 3>, ids: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [batch, seq, w] = hidden.dims();
    let device = hidden.device();
    let is_max = ids.clone().equal(ids.max_dim(1).expand([batch, seq]));
    let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
        .unsqueeze_dim::<2>(0)
        .expand([batch, seq]);
    let first = positions
        .mask_fill(is_max.bool_not(), seq as i64)
        .min_dim(1);
    hidden
        .gather(1, first.unsqueeze_dim::<3>(2).expand([batch, 1, w]))
        .reshape([batch, w])
}
