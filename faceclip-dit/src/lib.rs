//! The FLUX side of faceclip-rs (FaceT5-FLUX's generator), as diffusers builds it, on any Burn
//! backend.
//!
//! - [`FluxTransformer2DModel`]: diffusers' FLUX transformer with the released
//!   `transformer/config.json` ([`FluxConfig::from_json`], [`FluxConfig::flux_dev`]) and
//!   diffusers' key names (FaceCLIP's `dit.pt` or diffusers safetensors): timestep, guidance and
//!   pooled-text embeddings, double-stream and single-stream blocks with AdaLN-Zero modulation,
//!   RMS-normalised queries and keys, 3-axis rotary positions.
//! - [`pack_latents`] / [`unpack_latents`] / [`image_ids`]: FluxPipeline's 2×2 latent packing.
//! - [`denoise_flux`]: FluxPipeline's loop (flow-matching Euler, distilled guidance, true CFG).
//!
//! The flow-matching sampler is `faceclip_core::schedule::FlowMatchEuler`, the FLUX VAE
//! `faceclip_unet::AutoencoderKl` with `VaeConfig::flux()`, the T5 encoder
//! `faceclip_encoders::T5Encoder`.

#![warn(missing_docs)]

mod blocks;
mod config;
mod model;
mod rope;
mod sampling;

pub use config::FluxConfig;
pub use model::{FluxInput, FluxTransformer2DModel, PreparedFluxContext};
pub use rope::{apply_rotary, image_ids, pack_latents, rotary_tables, unpack_latents};
pub use sampling::{denoise_flux, FluxConditioning, FluxGuidance};
