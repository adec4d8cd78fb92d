//! Tensor layouts on CUDA.
//!
//! - The kernels and NVIDIA-library paths on tensors in CubeCL's pitched layout, where a row
//!   whose width in bytes is not a multiple of its alignment is padded (the dense default avoids
//!   it; `set_cuda_tensor_layout` can choose it). The fixtures' inputs then arrive padded (a
//!   10-wide f32 row takes 16 elements), and every output must still be written and read back
//!   right: on 2026-11-27 (H200) outputs allocated in that layout but written dense failed
//!   every case with an unaligned width. The layout is fixed when the device starts, so the
//!   checks run in a process of their own.
//! - Burn's matmul on dense tensors, where a row need not be 16-byte aligned: CubeCL's TMA
//!   kernels refuse such operands, and on 2026-11-27 (H100) one tuned on an aligned operand was
//!   reused for an unaligned one of the same shape class and failed at launch (the vendored
//!   `cubek-matmul` key now tells them apart).

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::{relative_l2, to_vec};

/// Relative L2 of a bf16 matmul against the f64 product of its rounded operands.
const MATMUL_TOLERANCE: f64 = 1e-2;

/// `lhs [batch, heads, rows, k] × rhs [batch, heads, k, cols]` where `lhs` is a view with its
/// middle axes swapped (highly permuted: the matmul copies it first), for `k` whose copy's rows
/// are 16-byte aligned in bf16 (80, 64) and for `k` of the same shape class whose are not (77,
/// 75), in that order, on one device; each product against the host's.
fn check_permuted_matmuls<B: Backend>(device: &B::Device) {
    let [batch, heads, rows, cols] = [2, 8, 1024, 64];
    for k in [80, 64, 77, 75] {
        let stored = Tensor::<B, 4>::random([batch, rows, heads, k], Distribution::Default, device);
        let lhs = stored.swap_dims(1, 2);
        let rhs = Tensor::<B, 4>::random([batch, heads, k, cols], Distribution::Default, device);
        let product = to_vec(lhs.clone().matmul(rhs.clone()));
        let (a, b) = (to_vec(lhs), to_vec(rhs));
        let mut expected = vec![0f32; batch * heads * rows * cols];
        for (m, out) in expected.chunks_mut(cols).enumerate() {
            let (matrix, row) = (m / rows, m % rows);
            let a_row = &a[(matrix * rows + row) * k..][..k];
            let b_matrix = &b[matrix * k * cols..][..k * cols];
            for (col, value) in out.iter_mut().enumerate() {
                let sum: f64 = (0..k)
                    .map(|i| f64::from(a_row[i]) * f64::from(b_matrix[i * cols + col]))
                    .sum();
                *value = sum as f32;
            }
        }
        let error = relative_l2(&product, &expected);
        println!("permuted matmul, k = {k}: relative L2 {error:.3e}");
        assert!(error <= MATMUL_TOLERANCE, "k = {k}: {error:.3e}");
    }
}

#[test]
fn permuted_matmuls_match_the_host_ndarray() {
    check_permuted_matmuls::<NdArray>(&Default::default());
}

test_alone!(
    #[cfg(feature = "cuda")]
    cuda_permuted_matmuls_match_the_host_bf16,
    {
        let device = Default::default();
        crate::assert_own_float_dtype::<faceclip_core::backend::CudaBf16>(&device);
        check_permuted_matmuls::<faceclip_core::backend::CudaBf16>(&device);
    }
);

test_alone!(
    #[cfg(feature = "cuda")]
    cuda_kernels_match_torch_on_pitched_tensors,
    {
        use crate::core_tests::{conv, group_norm, linear, row_norm, sdpa};
        use faceclip_core::backend::{set_cuda_tensor_layout, CudaBf16, CudaTensorLayout};
        set_cuda_tensor_layout(CudaTensorLayout::Pitched).expect("before the first CUDA tensor");
        let device = Default::default();
        crate::assert_own_float_dtype::<CudaBf16>(&device);
        conv::check_convs::<CudaBf16>(&device);
        linear::check_linears::<CudaBf16>(&device);
        linear::check_unfused_attention::<CudaBf16>(&device);
        group_norm::check_group_norm::<CudaBf16>(&device);
        row_norm::check_row_norms::<CudaBf16>(&device);
        sdpa::check_sdpa::<CudaBf16>(&device);
        let error = set_cuda_tensor_layout(CudaTensorLayout::Dense).unwrap_err();
        assert!(error.to_string().contains("already started"), "{error}");
    }
);
