//! The kernels and NVIDIA-library paths on CUDA tensors in CubeCL's pitched layout, where a row
//! whose width in bytes is not a multiple of its alignment is padded (the CUDA runtime's
//! `TensorLayout::Dense` default avoids it; `set_cuda_tensor_layout` can choose it). The
//! fixtures' inputs then arrive padded (a 10-wide f32 row takes 16 elements), and every output
//! must still be written and read back right: on 2026-11-27 (H200) outputs allocated in that
//! layout but written dense failed every case with an unaligned width. The layout is fixed when
//! the device starts, so the checks run in a process of their own.

#[cfg(feature = "cuda")]
#[test]
fn cuda_kernels_match_torch_on_pitched_tensors() {
    super::run_alone("core_tests::layout::cuda_kernels_match_torch_on_pitched_tensors_alone");
}

#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs a process of its own: run by cuda_kernels_match_torch_on_pitched_tensors"]
fn cuda_kernels_match_torch_on_pitched_tensors_alone() {
    use faceclip_core::backend::{set_cuda_tensor_layout, CudaBf16, CudaTensorLayout};
    set_cuda_tensor_layout(CudaTensorLayout::Pitched).expect("before the first CUDA tensor");
    let device = Default::default();
    super::conv::check_convs::<CudaBf16>(&device);
    super::linear::check_linears::<CudaBf16>(&device);
    super::linear::check_unfused_attention::<CudaBf16>(&device);
    super::group_norm::check_group_norm::<CudaBf16>(&device);
    super::row_norm::check_row_norms::<CudaBf16>(&device);
    super::sdpa::check_sdpa::<CudaBf16>(&device);
    let error = set_cuda_tensor_layout(CudaTensorLayout::Dense).unwrap_err();
    assert!(error.to_string().contains("already started"), "{error}");
}
