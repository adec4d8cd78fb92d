//! The T5 v1.1 encoder (FLUX's `text_encoder_2`, FaceT5's text stack): RMSNorm pre-norm blocks,
//! bucketed relative position bias shared by all blocks, unscaled and unmasked softmax attention,
//! gated GELU-tanh feed-forward. Reads Hugging Face `T5EncoderModel` names or FaceCLIP's FAT5
//! names (spec §8).

use burn::module::{Module, Param};
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use faceclip_core::nn::{
    gelu_tanh, load_linear, merge_heads, split_heads, Linear, PackedLinear, RmsNorm,
};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

use crate::token_ids::check_vocabulary;

/// Sizes of a T5 encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct T5Config {
    /// Vocabulary size (32128 for T5 v1.1).
    pub vocab_size: usize,
    /// Model width.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Relative-position buckets (32).
    pub num_buckets: usize,
    /// Distance beyond which all positions share a bucket (128).
    pub max_distance: usize,
    /// RMSNorm epsilon (1e-6).
    pub eps: f64,
}

impl T5Config {
    /// T5 v1.1 XXL's encoder (FLUX.1's `text_encoder_2`, FaceT5's stack): 24 × 4096, 64 heads of
    /// 64, feed-forward 10240 (4.76 B parameters).
    pub fn v1_1_xxl() -> Self {
        Self::sized(4096, 64, 64, 10240, 24)
    }

    /// A T5 v1.1 encoder of the given sizes (vocabulary 32128, 32 buckets, distance 128).
    pub fn sized(d_model: usize, d_kv: usize, heads: usize, d_ff: usize, layers: usize) -> Self {
        Self {
            vocab_size: 32128,
            d_model,
            d_kv,
            heads,
            d_ff,
            layers,
            num_buckets: 32,
            max_distance: 128,
            eps: 1e-6,
        }
    }
}

/// Which naming scheme a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T5Layout {
    /// Hugging Face `T5EncoderModel`: `shared.weight`,
    /// `encoder.block.i.layer.0.SelfAttention.q`, `….layer.1.DenseReluDense.wi_0`, ….
    HuggingFace,
    /// FaceCLIP's vendored FAT5 stack: `embed_tokens.weight`,
    /// `block.i.self_attention_layer.self_attention.Wq`, `….ff_layer.act.wi_0`, ….
    Fat5,
}

impl T5Layout {
    fn embed(self) -> &'static str {
        match self {
            Self::HuggingFace => "shared",
            Self::Fat5 => "embed_tokens",
        }
    }
    fn block(self, i: usize) -> String {
        match self {
            Self::HuggingFace => format!("encoder.block.{i}"),
            Self::Fat5 => format!("block.{i}"),
        }
    }
    fn attention(self) -> &'static str {
        match self {
            Self::HuggingFace => "layer.0.SelfAttention",
            Self::Fat5 => "self_attention_layer.self_attention",
        }
    }
    fn attention_norm(self) -> &'static str {
        match self {
            Self::HuggingFace => "layer.0.layer_norm",
            Self::Fat5 => "self_attention_layer.layer_norm",
        }
    }
    fn qkvo(self) -> [&'static str; 4] {
        match self {
            Self::HuggingFace => ["q", "k", "v", "o"],
            Self::Fat5 => ["Wq", "Wk", "Wv", "o"],
        }
    }
    fn bias_table(self) -> &'static str {
        match self {
            Self::HuggingFace => "relative_attention_bias",
            Self::Fat5 => "pe_encoding.relative_attention_bias",
        }
    }
    fn ff(self) -> [&'static str; 4] {
        match self {
            Self::HuggingFace => [
                "layer.1.DenseReluDense.wi_0",
                "layer.1.DenseReluDense.wi_1",
                "layer.1.DenseReluDense.wo",
                "layer.1.layer_norm",
            ],
            Self::Fat5 => [
                "ff_layer.act.wi_0",
                "ff_layer.act.wi_1",
                "ff_layer.wo",
                "ff_layer.layer_norm",
            ],
        }
    }
    fn final_norm(self) -> &'static str {
        match self {
            Self::HuggingFace => "encoder.final_layer_norm",
            Self::Fat5 => "final_layer_norm",
        }
    }
}

#[derive(Module, Debug)]
struct T5Block<B: Backend> {
    attention_norm: RmsNorm<B>,
    /// `q`, `k` and `v` as one GEMM.
    qkv: PackedLinear<B>,
    o: Linear<B>,
    ff_norm: RmsNorm<B>,
    /// `wi_0` (gate) and `wi_1` as one GEMM.
    wi: PackedLinear<B>,
    wo: Linear<B>,
    heads: usize,
}

impl<B: Backend> T5Block<B> {
    fn load(vb: &Weights<B>, c: &T5Config, layout: T5Layout) -> Result<Self, LoadError> {
        let inner = c.heads * c.d_kv;
        let attn = vb.pp(layout.attention());
        let [q, k, v, o] = layout.qkvo();
        let [wi_0, wi_1, wo, ff_norm] = layout.ff();
        Ok(Self {
            attention_norm: RmsNorm::load(&vb.pp(layout.attention_norm()), c.d_model, c.eps)?,
            qkv: PackedLinear::load(&attn, [q, k, v], c.d_model, [inner; 3], false)?,
            o: load_linear(&attn.pp(o), inner, c.d_model, false)?,
            ff_norm: RmsNorm::load(&vb.pp(ff_norm), c.d_model, c.eps)?,
            wi: PackedLinear::load(vb, [wi_0, wi_1], c.d_model, [c.d_ff; 2], false)?,
            wo: load_linear(&vb.pp(wo), c.d_ff, c.d_model, false)?,
            heads: c.heads,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, position_bias: &Tensor<B, 4>) -> Tensor<B, 3> {
        let h = self.attention_norm.forward(x.clone());
        let [b, n, _] = h.dims();
        let [q, k, v] = self.qkv.forward(h).map(|t| split_heads(t, self.heads));
        let out = attention(
            q,
            k,
            v,
            None,
            Some(position_bias.clone().expand([b, self.heads, n, n])),
            AttentionModuleOptions {
                scale: Some(1.0),
                ..Default::default()
            },
        );
        let x = x + self.o.forward(merge_heads(out));
        let h = self.ff_norm.forward(x.clone());
        let [gate, up] = self.wi.forward(h);
        let gated = gelu_tanh(gate) * up;
        x + self.wo.forward(gated)
    }
}

/// Hugging Face's bidirectional `_relative_position_bucket` of `key − query`.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative > 0 { half } else { 0 };
    let distance = relative.abs();
    let max_exact = half / 2;
    bucket += if distance < max_exact {
        distance
    } else {
        let scaled = ((distance as f32 / max_exact as f32).ln()
            / (max_distance as f32 / max_exact as f32).ln()
            * (half - max_exact) as f32) as i64;
        (max_exact + scaled).min(half - 1)
    };
    bucket as usize
}

/// A T5 v1.1 encoder: token ids in, final-normed hidden states out.
#[derive(Module, Debug)]
pub struct T5Encoder<B: Backend> {
    embed_tokens: Param<Tensor<B, 2>>,
    /// `[num_buckets, heads]`, owned by block 0 and used by every block.
    relative_attention_bias: Param<Tensor<B, 2>>,
    blocks: Vec<T5Block<B>>,
    final_norm: RmsNorm<B>,
    #[module(skip)]
    config: T5Config,
}

impl<B: Backend> T5Encoder<B> {
    /// Loads the encoder from `vb` with the key names of `layout`.
    pub fn load(vb: &Weights<B>, config: T5Config, layout: T5Layout) -> Result<Self, LoadError> {
        let c = &config;
        if c.heads == 0 || c.d_kv == 0 || c.layers == 0 || c.num_buckets < 4 || c.max_distance < 2 {
            return Err(LoadError::Config(format!("T5: unusable sizes {c:?}")));
        }
        let bias_key = format!(
            "{}.{}.{}",
            layout.block(0),
            layout.attention(),
            layout.bias_table()
        );
        Ok(Self {
            embed_tokens: Param::from_tensor(
                vb.pp(layout.embed())
                    .tensor("weight", [c.vocab_size, c.d_model])?,
            ),
            relative_attention_bias: Param::from_tensor(
                vb.pp(bias_key).tensor("weight", [c.num_buckets, c.heads])?,
            ),
            blocks: (0..c.layers)
                .map(|i| T5Block::load(&vb.pp(layout.block(i)), c, layout))
                .collect::<Result<_, _>>()?,
            final_norm: RmsNorm::load(&vb.pp(layout.final_norm()), c.d_model, c.eps)?,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The position bias `[1, heads, seq, seq]` added to every block's attention scores.
    pub fn position_bias(&self, seq: usize, device: &B::Device) -> Tensor<B, 4> {
        let c = &self.config;
        let buckets: Vec<i64> = (0..seq)
            .flat_map(|q| {
                (0..seq).map(move |k| {
                    relative_position_bucket(k as i64 - q as i64, c.num_buckets, c.max_distance)
                        as i64
                })
            })
            .collect();
        let buckets = Tensor::<B, 2, Int>::from_data(TensorData::new(buckets, [seq, seq]), device);
        // [seq, seq, heads] → [1, heads, seq, seq]
        embedding(self.relative_attention_bias.val(), buckets)
            .permute([2, 0, 1])
            .unsqueeze_dim(0)
    }

    /// Encodes `[batch, seq]` token ids (no attention mask: padding attends and is attended,
    /// as FLUX and FaceT5 run T5) to `[batch, seq, d_model]`.
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>, InputError> {
        let [batch, seq] = ids.dims();
        if batch == 0 || seq == 0 {
            return Err(InputError::Empty {
                what: "T5 token ids".into(),
                shape: vec![batch, seq],
            });
        }
        check_vocabulary(&ids, self.config.vocab_size, "T5 token id")?;
        let bias = self.position_bias(seq, &ids.device());
        let mut x = embedding(self.embed_tokens.val(), ids);
        for block in &self.blocks {
            x = block.forward(x, &bias);
        }
        Ok(self.final_norm.forward(x))
    }
}
