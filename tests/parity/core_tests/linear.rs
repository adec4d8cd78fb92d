//! `nn::Linear` against `torch.nn.Linear` (fixtures from `tools/parity/make_kernel_fixtures.py`)
//! with the weight as the loader gives it (a transposed view of PyTorch's `[out, in]`) and stored
//! `[in, out]`; on CUDA (f32 on TF32, and bf16) the layers run on cuBLASLt, which these tests
//! also check is the path taken.

use super::fixture;
use crate::{open_weights, reference as tensor};
use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::{fused_linear, NdArray};
use faceclip_core::nn::{load_linear, Linear};
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;

/// Relative L2 on full-f32 backends (CUDA's TF32 and bf16 get the reduced-precision bound
/// inside `assert_close`).
const TOLERANCE: f64 = 1e-5;

/// `layer` on case `name`'s rank-`D` input against PyTorch's output.
fn check_case<B: Backend, const D: usize>(
    layer: &Linear<B>,
    io: &Checkpoint,
    name: &str,
    label: &str,
) {
    let device = layer.weight.device();
    let x = tensor::<B, D>(io, &format!("{name}.x"), &device);
    assert_close(label, layer.forward(x), io, &format!("{name}.y"), TOLERANCE);
}

pub(super) fn check_linears<B: Backend>(device: &B::Device) {
    let path = fixture("linear.safetensors");
    let io = Checkpoint::open(&path).unwrap();
    let weights = open_weights::<B>(&path, device);
    // (name, input rank, d_in, d_out, bias)
    for (name, rank, d_in, d_out, bias) in [
        ("batched", 3, 128, 96, true),
        ("no_bias", 2, 33, 17, false),
        ("one_row", 2, 64, 256, true),
    ] {
        let loaded = load_linear(&weights.pp(name), d_in, d_out, bias).unwrap();
        let stored = Linear {
            weight: Param::from_tensor(tensor::<B, 2>(&io, &format!("{name}.weight_t"), device)),
            bias: loaded.bias.clone(),
        };
        for (layout, layer) in [("loaded", &loaded), ("stored [in, out]", &stored)] {
            let label = format!("linear on {}, weight {layout}", B::name(device));
            match rank {
                3 => check_case::<B, 3>(layer, &io, name, &label),
                _ => check_case::<B, 2>(layer, &io, name, &label),
            }
        }
    }
}

#[test]
fn linears_match_torch_ndarray() {
    let device = Default::default();
    check_linears::<NdArray>(&device);
    let x = Tensor::<NdArray, 2>::ones([2, 4], &device);
    let weight = Tensor::<NdArray, 2>::ones([4, 3], &device);
    assert!(
        fused_linear(&x, &weight, None).is_none(),
        "ndarray has no cuBLASLt path"
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn linears_match_torch_wgpu() {
    check_linears::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn linears_match_torch_cuda() {
    use faceclip_core::backend::{Cuda, NvidiaLibrary};
    super::on_library(NvidiaLibrary::CublasLt, 6, || {
        check_linears::<Cuda>(&Default::default())
    });
}

test_alone!(
    #[cfg(feature = "cuda")]
    linears_match_torch_cuda_bf16,
    {
        use faceclip_core::backend::{CudaBf16, NvidiaLibrary};
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        crate::core_tests::on_library(NvidiaLibrary::CublasLt, 6, || {
            check_linears::<CudaBf16>(&device)
        });
    }
);

/// `nn::attention_unfused` (two strided batched cuBLASLt GEMMs around a softmax on CUDA)
/// against Burn's attention on ndarray (which `packed_attention_matches_torch` ties to
/// PyTorch) on the same random operands, `kᵀ` read as a transposed view.
#[cfg(feature = "cuda")]
pub(super) fn check_unfused_attention<B: Backend>(device: &B::Device) {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Distribution, TensorData};
    use faceclip_core::nn::attention_unfused;
    use faceclip_core::parity::{relative_l2, to_vec, tolerance_on};

    let host = Default::default();
    let random = |shape: [usize; 4]| {
        Tensor::<NdArray, 4>::random(shape, Distribution::Normal(0.0, 1.0), &host)
    };
    let (q, k, v) = (
        random([2, 3, 40, 16]),
        random([2, 3, 24, 16]),
        random([2, 3, 24, 16]),
    );
    let expected = attention(
        q.clone(),
        k.clone(),
        v.clone(),
        None,
        None,
        AttentionModuleOptions::default(),
    );
    let on_device = |t: Tensor<NdArray, 4>| {
        let data: TensorData = t.into_data();
        Tensor::<B, 4>::from_data(data.convert::<f32>(), device)
    };
    let actual = attention_unfused(on_device(q), on_device(k), on_device(v), None);
    let err = relative_l2(&to_vec(actual), &to_vec(expected));
    let tolerance = tolerance_on::<B>(device, TOLERANCE);
    println!(
        "unfused attention on {}: relative L2 {err:.3e}",
        B::name(device)
    );
    assert!(err <= tolerance, "relative L2 {err:.3e} > {tolerance:e}");
}

#[cfg(feature = "cuda")]
#[test]
fn unfused_attention_matches_burn_cuda() {
    use faceclip_core::backend::{Cuda, NvidiaLibrary};
    super::on_library(NvidiaLibrary::CublasLt, 2, || {
        check_unfused_attention::<Cuda>(&Default::default())
    });
}

test_alone!(
    #[cfg(feature = "cuda")]
    unfused_attention_matches_burn_cuda_bf16,
    {
        use faceclip_core::backend::{CudaBf16, NvidiaLibrary};
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        crate::core_tests::on_library(NvidiaLibrary::CublasLt, 2, || {
            check_unfused_attention::<CudaBf16>(&device)
        });
    }
);
