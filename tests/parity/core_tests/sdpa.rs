//! `nn::sdpa` against `torch.nn.functional.scaled_dot_product_attention` (fixtures from
//! `tools/parity/make_kernel_fixtures.py`), with heads split from `[batch, tokens, heads, d]`
//! buffers through transposed views as the models do, causal or not; on CUDA in bf16 attention
//! runs as cuDNN's fused kernel, which the bf16 test also checks is the path taken.

use super::fixture;
use crate::reference as tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::AttentionModuleOptions;
use faceclip_core::backend::NdArray;
use faceclip_core::nn::sdpa;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;

/// Relative L2 on full-f32 backends (bf16 gets the reduced-precision bound inside
/// `assert_close`).
const TOLERANCE: f64 = 1e-5;

/// The fixture's cases.
const CASES: [&str; 4] = ["self", "cross", "scaled", "causal"];

pub(super) fn check_sdpa<B: Backend>(device: &B::Device) {
    let io = Checkpoint::open(fixture("sdpa.safetensors")).unwrap();
    for name in CASES {
        let (meta, _) = io.read_f32(&format!("{name}.meta")).unwrap();
        let operand = |part: &str| {
            let stored = tensor::<B, 4>(&io, &format!("{name}.{part}"), device);
            if meta[1] == 1.0 {
                stored.swap_dims(1, 2)
            } else {
                stored
            }
        };
        let options = AttentionModuleOptions {
            scale: (meta[0] != 0.0).then_some(f64::from(meta[0])),
            is_causal: meta[2] == 1.0,
            ..Default::default()
        };
        let y = sdpa(operand("q"), operand("k"), operand("v"), options);
        let label = format!("sdpa on {}", B::name(device));
        assert_close(&label, y, &io, &format!("{name}.y"), TOLERANCE);
    }
}

#[test]
fn sdpa_matches_torch_ndarray() {
    check_sdpa::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn sdpa_matches_torch_wgpu() {
    check_sdpa::<faceclip_core::backend::Wgpu>(&Default::default());
}

/// f32 on CUDA: Burn's attention (cuDNN's fused kernel takes bf16/f16 only).
#[cfg(feature = "cuda")]
#[test]
fn sdpa_matches_torch_cuda() {
    check_sdpa::<faceclip_core::backend::Cuda>(&Default::default());
}

test_alone!(
    #[cfg(feature = "cuda")]
    sdpa_matches_torch_cuda_bf16,
    {
        use faceclip_core::backend::{CudaBf16, NvidiaLibrary};
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        crate::core_tests::on_library(NvidiaLibrary::Cudnn, CASES.len() as u64, || {
            check_sdpa::<CudaBf16>(&device)
        });
    }
);
