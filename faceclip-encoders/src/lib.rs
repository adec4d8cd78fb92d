//! Encoders of faceclip-rs: the CLIP BPE tokenizer, OpenCLIP text towers and the ArcFace face ViT.
//!
//! Data flow: prompt → [`ClipTokenizer`] → [`TextTower`] (with the identity token injected via
//! [`TokenOverride`]); aligned face crop → [`FaceVit`] → identity vector and patch tokens.

#![warn(missing_docs)]

pub mod face_vit;
pub mod t5;
pub mod text;
mod token_ids;
pub mod tokenizer;

pub use face_vit::{FaceVit, FaceVitConfig, FaceVitOutput};
pub use t5::{T5Config, T5Encoder, T5Layout};
pub use text::{TextLayout, TextOutput, TextTower, TextTowerConfig, TokenOverride};
pub use tokenizer::{ClipTokenizer, Flavor, T5Tokenizer, TokenizerError};
