//! The workspace's integration tests: every module against its PyTorch reference (fixtures under
//! `<crate>/tests/fixtures/`, written by the scripts in `tools/parity/`), real-size key lists, and
//! bad input — on ndarray, and on wgpu with `--features wgpu`.
//!
//! They form one test binary on purpose: each binary instantiates the backends' generic code,
//! which is most of its build time, so one binary builds several times faster than one per crate.
//! Run one crate's tests with a filter: `cargo test --test parity -- unet_tests::`.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::weights::{Checkpoint, KeyRemap, LoadOptions, Weights};

mod align_tests;
mod core_tests;
mod dit_tests;
mod encoders_tests;
mod fusion_tests;
mod unet_tests;

/// Path of fixture `name` of workspace crate `krate`: `<krate>/tests/fixtures/<name>`.
pub fn fixture_of(krate: &str, name: &str) -> String {
    format!(
        "{}/{krate}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Tensor `key` of a reference file (panics naming the key when it is missing or of another rank).
pub fn reference<B: Backend, const D: usize>(
    io: &Checkpoint,
    key: &str,
    device: &B::Device,
) -> Tensor<B, D> {
    faceclip_core::parity::reference_tensor(io, key, device)
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// A fixture checkpoint's weights under their own key names (no remapping, default options).
pub fn open_weights<B: Backend>(path: impl AsRef<Path>, device: &B::Device) -> Weights<B> {
    let path = path.as_ref();
    Weights::open(path, &KeyRemap::new(), LoadOptions::default(), device)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
