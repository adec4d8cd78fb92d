//! The configuration of a `UNet2DConditionModel`, read from diffusers' `unet/config.json`.

use faceclip_core::LoadError;
use serde_json::Value;

use crate::blocks::check_groups;
use crate::json::ConfigJson;

/// Whether a resolution level of the UNet has transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelKind {
    /// ResNet blocks only (`DownBlock2D` / `UpBlock2D`).
    Plain,
    /// ResNet blocks each followed by a `Transformer2DModel` (`CrossAttnDownBlock2D` /
    /// `CrossAttnUpBlock2D`).
    CrossAttention,
}

/// SDXL's added conditioning (`addition_embed_type = "text_time"`): the pooled text embedding
/// and six size/crop numbers, each embedded sinusoidally, projected and added to the time
/// embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextTimeConfig {
    /// Width of the sinusoidal embedding of each of the six `time_ids` (256 for SDXL).
    pub time_embed_dim: usize,
    /// Input width of `add_embedding` (`pooled + 6 · time_embed_dim`; 2816 for SDXL).
    pub projection_input_dim: usize,
}

impl TextTimeConfig {
    /// Width of the pooled text embedding the model expects (1280 for SDXL).
    pub fn pooled_dim(&self) -> usize {
        self.projection_input_dim - 6 * self.time_embed_dim
    }
}

/// The keys of diffusers' `UNet2DConditionModel` configuration this port implements.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    /// Latent channels in.
    pub in_channels: usize,
    /// Channels out (the predicted noise).
    pub out_channels: usize,
    /// Width of each resolution level, highest resolution first.
    pub block_out_channels: Vec<usize>,
    /// Kind of each down level (up levels mirror `up_block_types`).
    pub down_levels: Vec<LevelKind>,
    /// Kind of each up level, lowest resolution first.
    pub up_levels: Vec<LevelKind>,
    /// ResNet blocks per down level (up levels have one more).
    pub layers_per_block: usize,
    /// Transformer blocks per `Transformer2DModel`, per level (the mid block uses the last).
    pub transformer_layers_per_block: Vec<usize>,
    /// Attention heads per level (diffusers' `num_attention_heads`, or `attention_head_dim`
    /// when the former is absent, as SDXL's config has it).
    pub attention_heads: Vec<usize>,
    /// Width of the text context (2048 for SDXL).
    pub cross_attention_dim: usize,
    /// Group-norm groups.
    pub norm_num_groups: usize,
    /// Group-norm epsilon of the ResNet blocks and the output norm.
    pub norm_eps: f64,
    /// Linear (SDXL) rather than 1×1-convolution projections around each transformer.
    pub use_linear_projection: bool,
    /// Order of the sinusoid halves: `[cos, sin]` when true.
    pub flip_sin_to_cos: bool,
    /// diffusers' `freq_shift` (`downscale_freq_shift` of the sinusoid).
    pub freq_shift: f64,
    /// Width of the time embedding (4 × `block_out_channels[0]` unless given).
    pub time_embedding_dim: usize,
    /// SDXL's text_time added conditioning, when present.
    pub text_time: Option<TextTimeConfig>,
}

impl UNetConfig {
    /// The SDXL base 1.0 UNet (2.57 B parameters), FaceCLIP-SDXL's generator.
    pub fn sdxl() -> Self {
        use LevelKind::*;
        Self {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280],
            down_levels: vec![Plain, CrossAttention, CrossAttention],
            up_levels: vec![CrossAttention, CrossAttention, Plain],
            layers_per_block: 2,
            transformer_layers_per_block: vec![1, 2, 10],
            attention_heads: vec![5, 10, 20],
            cross_attention_dim: 2048,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            use_linear_projection: true,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            time_embedding_dim: 1280,
            text_time: Some(TextTimeConfig {
                time_embed_dim: 256,
                projection_input_dim: 2816,
            }),
        }
    }

    /// Reads diffusers' `unet/config.json`; absent keys take diffusers' defaults. Options this
    /// port does not implement (class embeddings, other block or attention types, …) are
    /// refused with the key named.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let cfg = ConfigJson::parse(json, "UNet config.json")?;
        let null = Value::Null;
        let falsy = [null.clone(), Value::Bool(false)];
        for (key, allowed) in [
            ("act_fn", vec!["silu".into()]),
            ("class_embed_type", vec![null.clone()]),
            ("num_class_embeds", vec![null.clone()]),
            ("encoder_hid_dim", vec![null.clone()]),
            ("encoder_hid_dim_type", vec![null.clone()]),
            ("time_cond_proj_dim", vec![null.clone()]),
            ("timestep_post_act", vec![null.clone()]),
            ("time_embedding_act_fn", vec![null.clone()]),
            ("time_embedding_type", vec!["positional".into()]),
            ("resnet_time_scale_shift", vec!["default".into()]),
            ("resnet_skip_time_act", falsy.to_vec()),
            ("resnet_out_scale_factor", vec![1.into(), 1.0.into()]),
            ("mid_block_scale_factor", vec![1.into(), 1.0.into()]),
            ("mid_block_type", vec!["UNetMidBlock2DCrossAttn".into()]),
            ("only_cross_attention", falsy.to_vec()),
            ("dual_cross_attention", falsy.to_vec()),
            ("attention_type", vec!["default".into()]),
            ("cross_attention_norm", vec![null.clone()]),
            ("conv_in_kernel", vec![3.into()]),
            ("conv_out_kernel", vec![3.into()]),
            ("downsample_padding", vec![1.into()]),
            ("center_input_sample", falsy.to_vec()),
            ("reverse_transformer_layers_per_block", vec![null.clone()]),
            (
                "addition_embed_type",
                vec![null.clone(), "text_time".into()],
            ),
        ] {
            cfg.require(key, &allowed)?;
        }
        let down_types = cfg.strings(
            "down_block_types",
            &[
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ],
        )?;
        let up_types = cfg.strings(
            "up_block_types",
            &[
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ],
        )?;
        let kind = |name: &str, plain: &str, cross: &str| match name {
            n if n == plain => Ok(LevelKind::Plain),
            n if n == cross => Ok(LevelKind::CrossAttention),
            other => Err(cfg.error(format!(
                "block type `{other}` is not supported ({plain} or {cross})"
            ))),
        };
        let down_levels = down_types
            .iter()
            .map(|t| kind(t, "DownBlock2D", "CrossAttnDownBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let up_levels = up_types
            .iter()
            .map(|t| kind(t, "UpBlock2D", "CrossAttnUpBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let block_out_channels = cfg.usizes("block_out_channels", &[320, 640, 1280, 1280])?;
        let levels = block_out_channels.len();
        if cfg.get("layers_per_block").is_some_and(Value::is_array) {
            return Err(cfg.error("a per-level `layers_per_block` list is not supported"));
        }
        if cfg.get("cross_attention_dim").is_some_and(Value::is_array) {
            return Err(cfg.error("a per-level `cross_attention_dim` list is not supported"));
        }
        let heads = match cfg.per_block("num_attention_heads", levels)? {
            Some(heads) => heads,
            None => cfg
                .per_block("attention_head_dim", levels)?
                .unwrap_or(vec![8; levels]),
        };
        let text_time = match cfg.get("addition_embed_type") {
            Some(_) => Some(TextTimeConfig {
                time_embed_dim: cfg.usize("addition_time_embed_dim", 0)?,
                projection_input_dim: cfg.usize("projection_class_embeddings_input_dim", 0)?,
            }),
            None => None,
        };
        let config = Self {
            in_channels: cfg.usize("in_channels", 4)?,
            out_channels: cfg.usize("out_channels", 4)?,
            time_embedding_dim: cfg.usize(
                "time_embedding_dim",
                4 * block_out_channels.first().copied().unwrap_or(0),
            )?,
            block_out_channels,
            down_levels,
            up_levels,
            layers_per_block: cfg.usize("layers_per_block", 2)?,
            transformer_layers_per_block: cfg
                .per_block("transformer_layers_per_block", levels)?
                .unwrap_or(vec![1; levels]),
            attention_heads: heads,
            cross_attention_dim: cfg.usize("cross_attention_dim", 1280)?,
            norm_num_groups: cfg.usize("norm_num_groups", 32)?,
            norm_eps: cfg.f64("norm_eps", 1e-5)?,
            use_linear_projection: cfg.bool("use_linear_projection", false)?,
            flip_sin_to_cos: cfg.bool("flip_sin_to_cos", true)?,
            freq_shift: cfg.f64("freq_shift", 0.0)?,
            text_time,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration for consistency (level counts, divisibility, non-zero sizes).
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: String| Err(LoadError::Config(format!("UNet: {why}")));
        let levels = self.block_out_channels.len();
        if levels == 0 || self.block_out_channels.contains(&0) {
            return bad(format!(
                "block_out_channels {:?} must be non-empty and non-zero",
                self.block_out_channels
            ));
        }
        for (what, len) in [
            ("down_block_types", self.down_levels.len()),
            ("up_block_types", self.up_levels.len()),
            (
                "transformer_layers_per_block",
                self.transformer_layers_per_block.len(),
            ),
            ("attention heads", self.attention_heads.len()),
        ] {
            if len != levels {
                return bad(format!(
                    "{what} has {len} entries but block_out_channels has {levels}"
                ));
            }
        }
        if let Err(why) = check_groups(&self.block_out_channels, self.norm_num_groups) {
            return bad(why);
        }
        for (c, h) in self.block_out_channels.iter().zip(&self.attention_heads) {
            if *h == 0 || !c.is_multiple_of(*h) {
                return bad(format!(
                    "{c} channels cannot be split into {h} attention heads"
                ));
            }
        }
        if self.layers_per_block == 0
            || self.in_channels == 0
            || self.out_channels == 0
            || self.cross_attention_dim == 0
            || self.time_embedding_dim == 0
            || !self.block_out_channels[0].is_multiple_of(2)
        {
            return bad(
                "layers_per_block, channel counts, cross_attention_dim and time_embedding_dim \
                 must be non-zero (and block_out_channels[0] even)"
                    .into(),
            );
        }
        if let Some(tt) = &self.text_time {
            if tt.time_embed_dim == 0
                || !tt.time_embed_dim.is_multiple_of(2)
                || tt.projection_input_dim <= 6 * tt.time_embed_dim
            {
                return bad(format!(
                    "text_time conditioning needs an even addition_time_embed_dim and \
                     projection_class_embeddings_input_dim > 6 × it (got {} and {})",
                    tt.time_embed_dim, tt.projection_input_dim
                ));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps {} must be positive", self.norm_eps));
        }
        Ok(())
    }

    /// Spatial reduction from the input latent to the lowest level (2 per down level but the
    /// last).
    pub fn downscale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}
