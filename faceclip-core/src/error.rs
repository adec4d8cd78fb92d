//! Typed errors shared by every faceclip crate.

use std::path::PathBuf;

use crate::weights::DType;

/// Everything that can go wrong while reading a checkpoint or building a model from it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read checkpoint: {source}")]
    Io {
        /// The checkpoint file.
        file: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this crate understands, or it is damaged.
    #[error("{file}: corrupt or unsupported checkpoint: {reason}")]
    Corrupt {
        /// The checkpoint file.
        file: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{file}: missing key `{key}` (expected shape {expected:?})")]
    MissingKey {
        /// The checkpoint file.
        file: PathBuf,
        /// The key after remapping.
        key: String,
        /// The shape the model expected.
        expected: Vec<usize>,
    },
    /// A tensor exists but its shape differs from the model's.
    #[error("{file}: key `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The checkpoint file.
        file: PathBuf,
        /// The key after remapping.
        key: String,
        /// The shape the model expected.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored with an element type that cannot be used as a float weight.
    #[error("{file}: key `{key}` has unsupported dtype {dtype} (expected {expected})")]
    UnsupportedDtype {
        /// The checkpoint file.
        file: PathBuf,
        /// The key after remapping.
        key: String,
        /// The stored element type.
        dtype: DType,
        /// The element types that were acceptable.
        expected: &'static str,
    },
    /// Strict loading found tensors that no module consumed and that are not ignorable.
    #[error("{file}: {} unexpected key(s) under `{prefix}`, first: {}", keys.len(), keys.first().map(String::as_str).unwrap_or(""))]
    UnexpectedKeys {
        /// The checkpoint file.
        file: PathBuf,
        /// The scope that was loaded.
        prefix: String,
        /// Every unexpected key.
        keys: Vec<String>,
    },
    /// Key remapping sent two different stored keys to the same name.
    #[error("{file}: keys `{first}` and `{second}` both remap to `{target}`")]
    KeyCollision {
        /// The checkpoint file.
        file: PathBuf,
        /// The first stored key.
        first: String,
        /// The second stored key.
        second: String,
        /// The shared name after remapping.
        target: String,
    },
    /// A shard index names files that are not next to it.
    #[error("{index}: shard(s) {} listed in the index are missing", shards.join(", "))]
    MissingShards {
        /// The shard index (`*.index.json`).
        index: PathBuf,
        /// The absent shard file names.
        shards: Vec<String>,
    },
    /// The device failed while a weight was being created on it.
    #[error("cannot create weight `{key}` on the device: {reason}")]
    Device {
        /// The key after remapping.
        key: String,
        /// The backend's error.
        reason: String,
    },
    /// A model configuration is inconsistent (for example a width not divisible by the heads).
    #[error("invalid model configuration: {0}")]
    Config(String),
}

/// Bad user input to a model or helper (images, tensors, prompts).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// An image or tensor has a zero-sized dimension.
    #[error("{what} is empty (shape {shape:?})")]
    Empty {
        /// What was passed.
        what: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// An image tensor has a channel count other than 3.
    #[error("{what} has {channels} channel(s), expected 3 (RGB)")]
    Channels {
        /// What was passed.
        what: String,
        /// The channel count found.
        channels: usize,
    },
    /// A tensor has a shape the operation cannot accept.
    #[error("{what} has shape {found:?}, expected {expected}")]
    Shape {
        /// What was passed.
        what: String,
        /// Description of the accepted shapes.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A value lies outside the accepted range (for example a token id beyond the vocabulary).
    #[error("{what} = {value} is out of range (must be < {limit})")]
    OutOfRange {
        /// What was passed.
        what: String,
        /// The offending value.
        value: i64,
        /// The exclusive upper bound.
        limit: i64,
    },
    /// A setting or scalar input is unusable (NaN guidance, bad tiling, …).
    #[error("{what}: {reason}")]
    Value {
        /// What was passed.
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An image file could not be decoded.
    #[error("cannot decode image {file}: {reason}")]
    Image {
        /// The image file (or `<memory>`).
        file: PathBuf,
        /// The decoder's message.
        reason: String,
    },
}

impl InputError {
    /// `Ok` for a finite `value`, else a [`Value`](Self::Value) error naming `what` and it.
    pub fn check_finite(what: &str, value: f32) -> Result<(), Self> {
        if value.is_finite() {
            return Ok(());
        }
        Err(Self::Value {
            what: what.into(),
            reason: format!("{value} is not finite"),
        })
    }
}

/// A native library an accelerated path needs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// This build has no support for the library (its cargo feature is off).
    #[error("{library} support is not built in: enable the `{feature}` feature")]
    NotBuilt {
        /// The library.
        library: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The library is not installed where the dynamic loader looks.
    #[error(
        "{library} is not installed: none of {tried} could be loaded. Install it (NVIDIA's \
         package, or the `nvidia-*` Python wheel PyTorch ships with it) and add the directory \
         holding it to LD_LIBRARY_PATH"
    )]
    NotFound {
        /// The library.
        library: &'static str,
        /// The file names the loader tried.
        tried: String,
    },
}

/// A backend setting could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// This build has no support for the backend (its cargo feature is off).
    #[error("the backend is not built in: enable the `{feature}` feature")]
    NotBuilt {
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The setting must be chosen before the device's first use.
    #[error("a device has already started: choose its {what} before the first tensor on it")]
    DeviceStarted {
        /// The setting.
        what: &'static str,
    },
}
