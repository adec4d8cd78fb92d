//! Integration tests of faceclip-core: checkpoint reading (real torch archives, damaged files) and
//! shared layers against PyTorch, schedulers against diffusers.

mod checkpoint;
mod conv;
mod group_norm;
mod layout;
mod linear;
mod memory;
mod nn;
mod row_norm;
mod sampling;
mod schedule;
mod sdpa;

/// Path of a committed fixture (written by `tools/parity/make_fixtures.py`).
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-core", name)
}

/// Runs `check`, which must send at least `calls` operations to `library`, and asserts they all
/// ran on it: the library must be installed on a CUDA test machine (the error names the files
/// looked for), none may fall back to Burn's kernels, and no queued call may fail.
#[cfg(feature = "cuda")]
pub fn on_library(
    library: faceclip_core::backend::NvidiaLibrary,
    calls: u64,
    check: impl FnOnce(),
) {
    use faceclip_core::backend::{library_stats, use_library};
    use_library(library, true).unwrap_or_else(|e| panic!("{e}"));
    let before = library_stats(library);
    check();
    let after = library_stats(library);
    println!("{}: {before:?} -> {after:?}", library.name());
    assert!(after.launched >= before.launched + calls, "{after:?}");
    assert_eq!(after.fallbacks, before.fallbacks, "{after:?}");
    assert_eq!(after.lost, before.lost, "{after:?}");
}
