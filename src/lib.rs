//! faceclip-rs: identity-preserving text-to-image generation (ByteDance's FaceCLIP) on Burn.
//!
//! This facade is the crate applications depend on. It re-exports the component crates:
//! - [`core`]: checkpoint readers, shared layers, image helpers, errors and backend aliases;
//! - [`align`]: face detection (RetinaFace), 5-point alignment to the ArcFace template and the
//!   MobileFace identity scorer;
//! - [`encoders`]: the CLIP tokenizer, the OpenCLIP text towers and the ArcFace face ViT;
//! - [`fusion`]: FaceCLIP's identity–text fuser, swappable alternatives, and the complete
//!   FaceCLIP-SDXL encoder (`prompt_embeds [B, 77, 2048]`, `pooled [B, 1280]`).
//! - [`unet`]: the image side of SDXL generation: the UNet, the VAE and the guided denoising
//!   loop;
//! - [`dit`]: the FLUX transformer (FaceT5-FLUX's generator) and latent packing;
//! - [`pipeline`]: [`Pipeline::generate`](pipeline::Pipeline::generate), photo and prompt in,
//!   images of that person out.
//!
//! ```no_run
//! use faceclip::backend::NdArray;
//! use faceclip::core::weights::Weights;
//! use faceclip::encoders::{ClipTokenizer, TextTower, TextTowerConfig};
//!
//! let device = Default::default();
//! let tokenizer = ClipTokenizer::openclip()?;
//! let ids = tokenizer.tokenize_batch::<NdArray>(&["a portrait in soft light"], &device)?;
//! let tower = TextTower::load(&Weights::random(&device), TextTowerConfig::vit_l_14_quickgelu())?;
//! let out = tower.forward(ids, None)?;
//! assert_eq!(out.hidden.dims(), [1, 77, 768]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod pipeline;

pub use faceclip_align as align;
pub use faceclip_core as core;
pub use faceclip_core::backend;
pub use faceclip_dit as dit;
pub use faceclip_encoders as encoders;
pub use faceclip_fusion as fusion;
pub use faceclip_unet as unet;
