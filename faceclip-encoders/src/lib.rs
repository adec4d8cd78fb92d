//! Encoders of faceclip-rs: the CLIP BPE tokenizer, OpenCLIP text towers and the ArcFace face ViT.

pub mod tokenizer;

pub use tokenizer::{ClipTokenizer, Padding, TokenizerError};
