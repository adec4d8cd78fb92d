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

/// Runs `test`, an ignored test of this binary, in a child process, where it is the only test
/// on its device; fails when the child fails or runs no test.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn run_alone(test: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(exe)
        .args([test, "--exact", "--ignored", "--nocapture"])
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "{test} failed in its own process");
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its own process"
    );
}

/// Declares test `$name`, which runs `$body` in a child process of this test binary (through
/// the ignored test `$name::alone`), where it is the first and only test on its device: for
/// checks of a device's pools or layout, fixed when it starts, and for the bf16 CUDA tests,
/// since Burn keeps one default float type per device (the first backend to use it sets it).
/// `$body` sees its module's items; `$attr`s (a `cfg`) apply to both tests.
macro_rules! test_alone {
    ($(#[$attr:meta])* $name:ident, $body:block) => {
        $(#[$attr])*
        #[test]
        fn $name() {
            let module = module_path!().split_once("::").map_or("", |(_, path)| path);
            $crate::run_alone(&format!("{module}::{}::alone", stringify!($name)));
        }

        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            #[ignore = "needs a process of its own: run by the test of its module's name"]
            fn alone() $body
        }
    };
}

/// Whether `B` computes in a 16-bit float type (bf16, f16), whose 8 (11) significant bits
/// cannot hold the inputs of the fixtures' large-offset cases (50 ± 0.1 rounds to steps of
/// 0.25 in bf16): those cases test f32 accuracy and are skipped on such backends.
pub fn half_precision<B: Backend>() -> bool {
    use burn::tensor::Element;
    <B::FloatElem as Element>::dtype().size() < 4
}

/// Fails unless `B`'s float tensors on `device` are of `B`'s own float type: another backend
/// on the same device (`Cuda` before `CudaBf16`) would have set the device's default.
#[cfg(feature = "cuda")]
pub fn assert_own_float_dtype<B: Backend>(device: &B::Device) {
    use burn::tensor::Element;
    let dtype = Tensor::<B, 1>::zeros([1], device).dtype();
    assert_eq!(
        dtype,
        <B::FloatElem as Element>::dtype(),
        "{}: the device's float type was set by another backend first",
        B::name(device)
    );
}

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
