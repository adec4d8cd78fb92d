//! Shared contracts and building blocks of faceclip-rs.
//!
//! - [`weights`]: safetensors and PyTorch `.pt` readers, dtype casts, key remapping and the
//!   scoped [`weights::Weights`] view that every model loads from (typed [`LoadError`]s name
//!   the file, key and shapes at fault).
//! - [`nn`]: PyTorch-compatible layers shared by several models.
//! - [`image`]: picture ⟷ tensor conversion.
//! - [`parity`]: error metrics for comparisons with the PyTorch reference.
//! - [`prepared`]: which model and device a once-per-generation prepared context belongs to.
//! - [`schedule`]: diffusion samplers (Euler discrete, DDIM, DPM++ 2M) and seeded latent noise.
//! - [`rng`]: the host-side random stream behind every seeded value.
//! - [`backend`]: the only place naming concrete Burn backends.

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod image;
#[cfg(feature = "cube-kernels")]
pub mod kernels;
pub mod nn;
pub mod parity;
pub mod prepared;
pub mod rng;
pub mod schedule;
pub mod weights;

pub use error::{BackendError, InputError, LibraryError, LoadError};

/// `mutex`'s guard, also after a panic elsewhere poisoned it: what this crate keeps behind its
/// locks (load reports, library sessions and counters) stays valid after any panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
