//! Small configurations of every model for the random-weight demo pipelines.

use faceclip_dit::FluxConfig;
use faceclip_fusion::FaceT5FluxConfig;
use faceclip_unet::{LevelKind, TextTimeConfig, UNetConfig, VaeConfig};

/// The UNet of [`Pipeline::random_tiny`](super::Pipeline::random_tiny): SDXL's layout at 16/32/32 channels, context 16 + 24
/// (the widths of `FaceClipConfig::tiny`).
pub(super) fn tiny_unet_config() -> UNetConfig {
    UNetConfig {
        block_out_channels: vec![16, 32, 32],
        layers_per_block: 1,
        transformer_layers_per_block: vec![1, 1, 1],
        attention_heads: vec![2, 2, 2],
        cross_attention_dim: 16 + 24,
        norm_num_groups: 8,
        time_embedding_dim: 64,
        text_time: Some(TextTimeConfig {
            time_embed_dim: 8,
            projection_input_dim: 6 * 8 + 24,
        }),
        down_levels: vec![
            LevelKind::Plain,
            LevelKind::CrossAttention,
            LevelKind::CrossAttention,
        ],
        up_levels: vec![
            LevelKind::CrossAttention,
            LevelKind::CrossAttention,
            LevelKind::Plain,
        ],
        ..UNetConfig::sdxl()
    }
}

/// The VAE of [`Pipeline::random_tiny`](super::Pipeline::random_tiny): SDXL's four levels (8× reduction) at 8–32 channels.
pub(super) fn tiny_vae_config() -> VaeConfig {
    VaeConfig {
        block_out_channels: vec![8, 16, 32, 32],
        layers_per_block: 1,
        norm_num_groups: 8,
        ..VaeConfig::sdxl()
    }
}

/// The FLUX transformer of [`Pipeline::random_tiny_flux`](super::Pipeline::random_tiny_flux):
/// one double and one single block, 2 heads × 16, context and pooled widths of
/// [`FaceT5FluxConfig::tiny`], 4 latent channels packed to 16.
pub(super) fn tiny_flux_config() -> FluxConfig {
    let text = FaceT5FluxConfig::tiny();
    FluxConfig {
        in_channels: 16,
        out_channels: 16,
        num_layers: 1,
        num_single_layers: 1,
        attention_head_dim: 16,
        num_attention_heads: 2,
        joint_attention_dim: text.facet5.t5.d_model,
        pooled_projection_dim: text.clip.width,
        guidance_embeds: true,
        axes_dims_rope: [4, 6, 6],
    }
}

/// The VAE of [`Pipeline::random_tiny_flux`](super::Pipeline::random_tiny_flux): the tiny SDXL
/// layout with FLUX's conventions (no quant convolutions, scaling 0.3611, shift 0.1159).
pub(super) fn tiny_flux_vae_config() -> VaeConfig {
    let flux = VaeConfig::flux();
    VaeConfig {
        scaling_factor: flux.scaling_factor,
        shift_factor: flux.shift_factor,
        use_quant_conv: false,
        use_post_quant_conv: false,
        ..tiny_vae_config()
    }
}
