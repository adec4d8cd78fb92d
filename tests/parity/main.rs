//! The workspace's integration tests: every module against its PyTorch reference (fixtures under
//! `<crate>/tests/fixtures/`, written by the scripts in `tools/parity/`), real-size key lists, and
//! bad input — on ndarray, and on wgpu with `--features wgpu`.
//!
//! They form one test binary on purpose: each binary instantiates the backends' generic code,
//! which is most of its build time, so one binary builds several times faster than one per crate.
//! Run one crate's tests with a filter: `cargo test --test parity -- unet_tests::`.

mod align_tests;
mod core_tests;
mod dit_tests;
mod encoders_tests;
mod fusion_tests;
mod unet_tests;
