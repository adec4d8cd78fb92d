//! How Burn's CUDA backend lays tensors out in memory: dense (this workspace's default) or
//! CubeCL's pitched rows.

/// The memory layout of the tensors of a CUDA device (choose before the first CUDA tensor,
/// with [`set_cuda_tensor_layout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CudaTensorLayout {
    /// Dense and row-major, as on wgpu and in PyTorch: cuBLASLt, cuDNN and the fused kernels
    /// read such a tensor in place, and it takes exactly its bytes.
    #[default]
    Dense,
    /// CubeCL's preset: a row whose width in bytes is not a multiple of its alignment (the next
    /// power of two of the width, 16 to 512 bytes) is padded to one. A 3×3 convolution's weight
    /// row (6 bytes in bf16) then takes 16 bytes, and the libraries and kernels above copy
    /// such a tensor to a dense one before each use.
    Pitched,
}

/// Lays out the tensors of every CUDA device started from now on. Fails without the `cuda`
/// feature, and once a CUDA device has started.
pub fn set_cuda_tensor_layout(layout: CudaTensorLayout) -> Result<(), crate::error::BackendError> {
    #[cfg(feature = "cuda")]
    {
        let layout = match layout {
            CudaTensorLayout::Dense => cubecl::cuda::TensorLayout::Dense,
            CudaTensorLayout::Pitched => cubecl::cuda::TensorLayout::Pitched,
        };
        cubecl::cuda::set_tensor_layout(layout).map_err(|()| {
            crate::error::BackendError::DeviceStarted {
                what: "tensor layout",
            }
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = layout;
        Err(crate::error::BackendError::NotBuilt { feature: "cuda" })
    }
}

#[cfg(all(test, not(feature = "cuda")))]
#[test]
fn cuda_tensor_layout_needs_the_cuda_feature() {
    let error = set_cuda_tensor_layout(CudaTensorLayout::Pitched).unwrap_err();
    assert!(error.to_string().contains("`cuda` feature"), "{error}");
}

/// The layouts the patched CUDA runtime hands out (host code only: no GPU needed).
#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::*;
    use cubecl::cuda::{CudaMemoryLayoutPolicy, TensorLayout};
    use cubecl::server::{MemoryLayoutDescriptor, MemoryLayoutPolicy};
    use cubecl::zspace::Shape;
    use cubecl_common::stream_id::StreamId;

    /// The strides of a new tensor of `shape` with `elem_size`-byte elements under `layout`,
    /// on a device that aligns buffers to 512 bytes (CUDA's).
    fn strides(layout: TensorLayout, shape: &[usize], elem_size: usize) -> Vec<usize> {
        let policy = CudaMemoryLayoutPolicy::new(512, layout);
        let descriptor = MemoryLayoutDescriptor::optimized(Shape::from(shape.to_vec()), elem_size);
        let (_, layouts) = policy.apply(StreamId::current(), &[descriptor]);
        layouts[0].strides.iter().copied().collect()
    }

    #[test]
    fn dense_tensors_have_row_major_strides() {
        // A 3×3 convolution's weight and a 320-wide activation in bf16.
        assert_eq!(
            strides(TensorLayout::Dense, &[640, 320, 3, 3], 2),
            [2880, 9, 3, 1]
        );
        assert_eq!(
            strides(TensorLayout::Dense, &[2, 3888, 320], 2),
            [3888 * 320, 320, 1]
        );
        // CubeCL's pitched layout pads those rows: 6 bytes to 16, 640 bytes to 1 024.
        assert_eq!(
            strides(TensorLayout::Pitched, &[640, 320, 3, 3], 2),
            [7680, 24, 8, 1]
        );
        assert_eq!(
            strides(TensorLayout::Pitched, &[2, 3888, 320], 2),
            [3888 * 512, 512, 1]
        );
    }

    #[test]
    fn tensors_are_dense_unless_set() {
        assert_eq!(TensorLayout::default(), TensorLayout::Dense);
        assert_eq!(CudaTensorLayout::default(), CudaTensorLayout::Dense);
    }
}
