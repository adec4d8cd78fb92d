//! `nn::conv_forward` against `torch.nn.Conv2d` (fixtures from
//! `tools/parity/make_kernel_fixtures.py`): 3×3 same-size, stride-2, 1×1 and grouped
//! convolutions; on CUDA (f32 on TF32, and bf16) they run on cuDNN, which these tests also
//! check is the path taken, through its legacy call and (the `_graph` tests) its graph API.

use super::fixture;
use crate::{open_weights, reference as tensor};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use faceclip_core::backend::NdArray;
use faceclip_core::nn::{conv_forward, load_conv2d};
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;

/// Relative L2 on full-f32 backends (CUDA's TF32 and bf16 get the reduced-precision bound
/// inside `assert_close`).
const TOLERANCE: f64 = 1e-5;

pub(super) fn check_convs<B: Backend>(device: &B::Device) {
    let path = fixture("conv.safetensors");
    let io = Checkpoint::open(&path).unwrap();
    let weights = open_weights::<B>(&path, device);
    // (name, [c_in per group, c_out], kernel, bias)
    for (name, channels, kernel, bias) in [
        ("same", [16, 24], 3, true),
        ("down", [8, 8], 3, true),
        ("pointwise", [12, 20], 1, false),
        ("grouped", [2, 12], 3, true),
    ] {
        // Metadata is read on the host: a bf16 backend would round it.
        let (meta, _) = io.read_f32(&format!("{name}.meta")).unwrap();
        let [stride, padding, groups] = meta[..] else {
            panic!("{name}.meta holds [stride, padding, groups]")
        };
        let (stride, padding, groups) = (stride as usize, padding as usize, groups as usize);
        let mut conv = load_conv2d(&weights.pp(name), channels, kernel, stride, bias).unwrap();
        conv.padding = PaddingConfig2d::Explicit(padding, padding, padding, padding);
        conv.groups = groups;
        let x = tensor::<B, 4>(&io, &format!("{name}.x"), device);
        assert_close(
            &format!("conv on {}, {name}", B::name(device)),
            conv_forward(&conv, x),
            &io,
            &format!("{name}.y"),
            TOLERANCE,
        );
    }
}

#[test]
fn convs_match_torch_ndarray() {
    check_convs::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn convs_match_torch_wgpu() {
    check_convs::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn convs_match_torch_cuda() {
    use faceclip_core::backend::{Cuda, NvidiaLibrary};
    super::on_library(NvidiaLibrary::Cudnn, 4, || {
        check_convs::<Cuda>(&Default::default())
    });
}

test_alone!(
    #[cfg(feature = "cuda")]
    convs_match_torch_cuda_bf16,
    {
        use faceclip_core::backend::{CudaBf16, NvidiaLibrary};
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        crate::core_tests::on_library(NvidiaLibrary::Cudnn, 4, || check_convs::<CudaBf16>(&device));
    }
);

/// The same convolutions through cuDNN's graph API (`CudaConvolution::CudnnGraph`), each
/// backend in a process of its own: the choice holds for every thread.
#[cfg(feature = "cuda")]
fn on_cudnn_graph(check: impl FnOnce()) {
    use faceclip_core::backend::{set_cuda_convolution, CudaConvolution, NvidiaLibrary};
    set_cuda_convolution(CudaConvolution::CudnnGraph);
    super::on_library(NvidiaLibrary::Cudnn, 4, check);
}

test_alone!(
    #[cfg(feature = "cuda")]
    convs_match_torch_cuda_graph,
    {
        on_cudnn_graph(|| check_convs::<faceclip_core::backend::Cuda>(&Default::default()));
    }
);

test_alone!(
    #[cfg(feature = "cuda")]
    convs_match_torch_cuda_bf16_graph,
    {
        use faceclip_core::backend::CudaBf16;
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        on_cudnn_graph(|| check_convs::<CudaBf16>(&device));
    }
);
