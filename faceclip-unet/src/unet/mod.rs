//! diffusers' `UNet2DConditionModel` (SDXL's denoiser) with its `config.json` and key names.

mod config;
mod embedding;
mod model;
mod transformer;

pub use config::{LevelKind, TextTimeConfig, UNetConfig};
pub use embedding::{embedding_tensor, sinusoidal_embedding, TimestepMlp};
pub use model::{PreparedContext, TextTimeCondition, UNet2DConditionModel};
