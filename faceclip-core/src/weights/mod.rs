//! Checkpoint reading: safetensors and PyTorch `.pt` archives (single or sharded), dtype casts,
//! key remapping and the scoped [`Weights`] view that model constructors load from.

mod checkpoint;
mod dtype;
mod loader;
mod pickle;
mod remap;
mod sharded;

pub use checkpoint::{Checkpoint, Format, TensorInfo};
pub use dtype::DType;
pub use loader::{IgnoreRules, LoadOptions, LoadReport, Weights};
pub use remap::{KeyRemap, RemapRule};
pub use sharded::CheckpointSet;
