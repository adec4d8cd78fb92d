//! The configuration of a `FluxTransformer2DModel`, read from diffusers' `transformer/config.json`.

use faceclip_core::LoadError;
use faceclip_unet::json::ConfigJson;

/// The keys of diffusers' `FluxTransformer2DModel` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxConfig {
    /// Packed latent channels in (64 = 16 latent channels × 2 × 2).
    pub in_channels: usize,
    /// Channels out (`in_channels` unless given).
    pub out_channels: usize,
    /// Double-stream (joint image–text) blocks.
    pub num_layers: usize,
    /// Single-stream blocks.
    pub num_single_layers: usize,
    /// Width of one attention head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text context (T5: 4096).
    pub joint_attention_dim: usize,
    /// Width of the pooled text vector (CLIP-L: 768).
    pub pooled_projection_dim: usize,
    /// Whether a guidance scale is embedded (FLUX.1-dev's distilled guidance).
    pub guidance_embeds: bool,
    /// Rotary dimensions of the (text/index, row, column) axes; they sum to the head width.
    pub axes_dims_rope: [usize; 3],
}

impl FluxConfig {
    /// FLUX.1-dev: 19 double + 38 single blocks, 24 heads × 128, context 4096, pooled 768,
    /// guidance embedding, RoPE axes (16, 56, 56).
    pub fn flux_dev() -> Self {
        Self {
            in_channels: 64,
            out_channels: 64,
            num_layers: 19,
            num_single_layers: 38,
            attention_head_dim: 128,
            num_attention_heads: 24,
            joint_attention_dim: 4096,
            pooled_projection_dim: 768,
            guidance_embeds: true,
            axes_dims_rope: [16, 56, 56],
        }
    }

    /// Model width (`heads × head_dim`, 3072 for FLUX.1-dev).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Reads diffusers' `transformer/config.json` (absent keys take diffusers' defaults).
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let cfg = ConfigJson::parse(json, "FLUX transformer config.json")?;
        cfg.require("patch_size", &[1.into()])?;
        let in_channels = cfg.usize("in_channels", 64)?;
        let axes = cfg.usizes("axes_dims_rope", &[16, 56, 56])?;
        let axes_dims_rope: [usize; 3] = axes.clone().try_into().map_err(|_| {
            cfg.error(format!(
                "`axes_dims_rope` must have 3 entries, got {axes:?}"
            ))
        })?;
        let config = Self {
            in_channels,
            out_channels: cfg.usize("out_channels", in_channels)?,
            num_layers: cfg.usize("num_layers", 19)?,
            num_single_layers: cfg.usize("num_single_layers", 38)?,
            attention_head_dim: cfg.usize("attention_head_dim", 128)?,
            num_attention_heads: cfg.usize("num_attention_heads", 24)?,
            joint_attention_dim: cfg.usize("joint_attention_dim", 4096)?,
            pooled_projection_dim: cfg.usize("pooled_projection_dim", 768)?,
            guidance_embeds: cfg.bool("guidance_embeds", false)?,
            axes_dims_rope,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks sizes: non-zero widths, RoPE axes summing to the head width, even axes.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: String| Err(LoadError::Config(format!("FLUX transformer: {why}")));
        if [
            self.in_channels,
            self.out_channels,
            self.attention_head_dim,
            self.num_attention_heads,
            self.joint_attention_dim,
            self.pooled_projection_dim,
        ]
        .contains(&0)
        {
            return bad(format!("every width must be non-zero: {self:?}"));
        }
        let rope: usize = self.axes_dims_rope.iter().sum();
        if rope != self.attention_head_dim || self.axes_dims_rope.iter().any(|d| d % 2 != 0) {
            return bad(format!(
                "axes_dims_rope {:?} must be even and sum to attention_head_dim {}",
                self.axes_dims_rope, self.attention_head_dim
            ));
        }
        Ok(())
    }
}
