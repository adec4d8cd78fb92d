//! The backend-selection layer: the only place that names concrete Burn backends.
//!
//! Model code is generic over `B: Backend`; binaries, examples, benches and tests pick one of
//! these aliases. Each exists only when its cargo feature (`ndarray`, `wgpu`, `cuda`) is on.
//! [`is_cuda`] lets generic code ask at run time whether it runs on CUDA, and
//! [`fused_group_norm`] routes a group norm to the CubeCL kernels of these aliases.

/// CPU backend (ndarray, multi-threaded, SIMD), `f32`.
#[cfg(feature = "ndarray")]
pub type NdArray = burn_ndarray::NdArray<f32>;

/// Any GPU through wgpu (Vulkan, Metal, DX12; software Vulkan in CI), `f32`.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn_wgpu::Wgpu<f32, i32>;

/// NVIDIA GPUs through CUDA, `f32`.
#[cfg(feature = "cuda")]
pub type Cuda = burn_cuda::Cuda<f32, i32>;

/// The device of each backend alias.
#[cfg(feature = "ndarray")]
pub type NdArrayDevice = burn_ndarray::NdArrayDevice;
/// The device of [`Wgpu`].
#[cfg(feature = "wgpu")]
pub type WgpuDevice = burn_wgpu::WgpuDevice;
/// The device of [`Cuda`].
#[cfg(feature = "cuda")]
pub type CudaDevice = burn_cuda::CudaDevice;

/// NVIDIA GPUs through CUDA with `bf16` tensors (weights and activations), the precision the
/// GPU benchmarks compare with PyTorch's bf16 runs.
#[cfg(feature = "cuda")]
pub type CudaBf16 = burn_cuda::Cuda<burn::tensor::bf16, i32>;

/// Whether backend `B` on `device` is Burn's CUDA backend (any precision, with or without
/// fusion): where model code takes a CUDA-specific path, such as
/// [`sdpa`](crate::nn::sdpa)'s query padding, without naming the backend type.
pub fn is_cuda<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    B::name(device).contains("cuda")
}

/// Operands of a group norm: the input, `γ` and `β`.
pub type GroupNormOperands<B, const D: usize> = (
    burn::tensor::Tensor<B, D>,
    burn::tensor::Tensor<B, 1>,
    burn::tensor::Tensor<B, 1>,
);

/// The backend a fused alias wraps.
#[cfg(feature = "cube-kernels")]
type Inner<T> = <T as crate::kernels::FusedBackend>::Inner;

/// `GroupNorm(groups, epsilon)`, then SiLU when `silu`, through the fused CubeCL kernels
/// ([`crate::kernels::group_norm`]) when `B` is `Wgpu`, `Cuda` or `CudaBf16` (whichever
/// are built in) and the kernels take the operands; otherwise the operands back, for the
/// portable path.
pub fn fused_group_norm<B: burn::tensor::backend::Backend, const D: usize>(
    mut operands: GroupNormOperands<B, D>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> Result<burn::tensor::Tensor<B, D>, GroupNormOperands<B, D>> {
    type Path<B, const D: usize> =
        fn(
            GroupNormOperands<B, D>,
            usize,
            f64,
            bool,
        ) -> Result<burn::tensor::Tensor<B, D>, GroupNormOperands<B, D>>;
    let paths: &[Path<B, D>] = &[
        #[cfg(feature = "wgpu")]
        crate::kernels::group_norm_on::<B, Inner<Wgpu>, _, D>,
        #[cfg(feature = "cuda")]
        crate::kernels::group_norm_on::<B, Inner<Cuda>, _, D>,
        #[cfg(feature = "cuda")]
        crate::kernels::group_norm_on::<B, Inner<CudaBf16>, _, D>,
    ];
    for path in paths {
        operands = match path(operands, groups, epsilon, silu) {
            Ok(output) => return Ok(output),
            Err(operands) => operands,
        };
    }
    Err(operands)
}
