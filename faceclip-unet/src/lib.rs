//! The image side of FaceCLIP-SDXL generation, as diffusers builds it, on any Burn backend.
//!
//! - [`UNet2DConditionModel`]: diffusers' UNet with the released `unet/config.json`
//!   ([`UNetConfig::from_json`], [`UNetConfig::sdxl`]), SDXL's text_time conditioning
//!   ([`TextTimeCondition`]) and diffusers' key names (FaceCLIP's `unet.pt` or safetensors).
//! - [`AutoencoderKl`]: diffusers' `AutoencoderKL` (the SDXL VAE): [`encode`](AutoencoderKl::encode)
//!   images to the latent mean, [`decode`](AutoencoderKl::decode) latents to images (also
//!   [tiled](AutoencoderKl::decode_tiled)), with the released `config.json`
//!   ([`VaeConfig::from_json`]) and diffusers' safetensors key names.
//! - [`denoise`]: the SDXL sampling loop with classifier-free guidance over any
//!   [`Scheduler`](faceclip_core::schedule::Scheduler).
//! - [`blocks`]: the building blocks shared by the UNet and the VAE (ResNet block, spatial
//!   self-attention, up/down-sampling).
//!
//! ```no_run
//! use faceclip_core::backend::NdArray;
//! use faceclip_core::weights::{KeyRemap, LoadOptions, Weights};
//! use faceclip_unet::{AutoencoderKl, VaeConfig};
//!
//! let device = Default::default();
//! let config = VaeConfig::from_json(&std::fs::read_to_string("sdxl-vae/config.json")?)?;
//! let vb = Weights::<NdArray>::open(
//!     "sdxl-vae/diffusion_pytorch_model.safetensors",
//!     &KeyRemap::new(),
//!     LoadOptions::default(),
//!     &device,
//! )?;
//! let vae = AutoencoderKl::load(&vb, config)?;
//! vb.finish()?; // every tensor of the file was used
//! let latents = burn::tensor::Tensor::<NdArray, 4>::zeros([1, 4, 128, 128], &device);
//! let image = vae.decode_scaled(latents)?; // [1, 3, 1024, 1024] in [-1, 1]
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod blocks;
pub mod json;
mod sampling;
mod tiling;
pub mod unet;
mod vae;

pub use sampling::{check_guidance, denoise, Conditioning, DenoiseError, StepProgress};
pub use tiling::VaeTiling;
pub use unet::{
    LevelKind, PreparedContext, TextTimeCondition, TextTimeConfig, UNet2DConditionModel, UNetConfig,
};
pub use vae::{AutoencoderKl, VaeConfig};
