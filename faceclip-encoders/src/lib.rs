//! Encoders of faceclip-rs: the CLIP BPE tokenizer, OpenCLIP text towers and the ArcFace face ViT.

pub mod text;
pub mod tokenizer;

pub use text::{TextOutput, TextTower, TextTowerConfig, TokenOverride};
pub use tokenizer::{ClipTokenizer, Padding, TokenizerError};
