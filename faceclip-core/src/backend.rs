//! The backend-selection layer: the only place that names concrete Burn backends.
//!
//! Model code is generic over `B: Backend`; binaries, examples, benches and tests pick one of
//! these aliases. Each exists only when its cargo feature (`ndarray`, `wgpu`, `cuda`) is on.
//! [`is_cuda`] lets generic code ask at run time whether it runs on CUDA, and
//! [`fused_group_norm`] and [`fused_row_norm`] route norms to the CubeCL kernels of these
//! aliases; [`fused_linear`], [`fused_batched_matmul`] and [`fused_conv2d`] route linear
//! layers, batched products and convolutions to NVIDIA's cuBLASLt and cuDNN on the CUDA aliases
//! ([`use_library`], [`library_stats`]), [`fused_attention`] attention to cuDNN's fused kernel,
//! and [`set_cuda_attention`] picks attention's kernels there. [`device_memory`] reads the GPU
//! backends' memory pool, [`set_cuda_memory_pools`] chooses its layout on CUDA, and
//! [`set_cuda_tensor_layout`] how CUDA tensors are laid out (dense by default).

mod memory_pools;
mod tensor_layout;

pub use memory_pools::{set_cuda_memory_pools, CudaMemoryPools};
pub use tensor_layout::{set_cuda_tensor_layout, CudaTensorLayout};

use burn::tensor::{backend::Backend, Tensor};
#[cfg(feature = "cube-kernels")]
use burn::tensor::{ops::FloatTensor, TensorPrimitive};

use crate::error::LibraryError;

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
///
/// [`Cuda`] and `CudaBf16` share their devices, and Burn keeps one default float type per
/// device, set by the first backend that uses it: after [`Cuda`] has used a device, tensors
/// `CudaBf16` creates there are f32. Use one of the two per process.
#[cfg(feature = "cuda")]
pub type CudaBf16 = burn_cuda::Cuda<burn::tensor::bf16, i32>;

/// Whether backend `B` on `device` is Burn's CUDA backend (any precision, with or without
/// fusion): where model code takes a CUDA-specific path, such as
/// [`sdpa`](crate::nn::sdpa)'s query padding, without naming the backend type.
pub fn is_cuda<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("cuda")
}

/// The backend a fused alias wraps.
#[cfg(feature = "cube-kernels")]
type Inner<T> = <T as crate::kernels::FusedBackend>::Inner;

/// `kernel` on `inputs` through the first CubeCL alias (`Wgpu`, `Cuda`, `CudaBf16`, whichever
/// are built in) that `B` is, when the kernel takes the inputs; `None` otherwise.
#[cfg(feature = "cube-kernels")]
fn fused<B: Backend, K: crate::kernels::FusedKernel, const D: usize, const A: usize>(
    kernel: &K,
    x: &Tensor<B, D>,
    a: &Tensor<B, A>,
    b: &Tensor<B, A>,
) -> Option<Tensor<B, D>> {
    use crate::kernels::run_on;
    type Path<B, K> = fn(&K, [FloatTensor<B>; 3]) -> Result<FloatTensor<B>, [FloatTensor<B>; 3]>;
    let paths: &[Path<B, K>] = &[
        #[cfg(feature = "wgpu")]
        run_on::<B, Inner<Wgpu>, _, K>,
        #[cfg(feature = "cuda")]
        run_on::<B, Inner<Cuda>, _, K>,
        #[cfg(feature = "cuda")]
        run_on::<B, Inner<CudaBf16>, _, K>,
    ];
    let primitive = |t: Tensor<B, A>| t.into_primitive().tensor();
    let mut inputs = [
        x.clone().into_primitive().tensor(),
        primitive(a.clone()),
        primitive(b.clone()),
    ];
    for path in paths {
        inputs = match path(kernel, inputs) {
            Ok(output) => return Some(Tensor::from_primitive(TensorPrimitive::Float(output))),
            Err(inputs) => inputs,
        };
    }
    None
}

/// `GroupNorm(groups, epsilon)` of `x` `[batch, channels, spatial…]` with `γ`, `β`, then SiLU
/// when `silu`, computed by the fused CubeCL kernels ([`crate::kernels::group_norm`]) when `B`
/// is `Wgpu`, `Cuda` or `CudaBf16` (whichever are built in) and the kernels take the operands;
/// `None` otherwise, for the portable path.
pub fn fused_group_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> Option<Tensor<B, D>> {
    #[cfg(feature = "cube-kernels")]
    {
        let kernel = crate::kernels::group_norm::GroupNorm {
            groups,
            epsilon,
            silu,
        };
        fused(&kernel, x, gamma, beta)
    }
    #[cfg(not(feature = "cube-kernels"))]
    {
        let _ = (x, gamma, beta, groups, epsilon, silu);
        None
    }
}

/// A norm of `x` over its last axis — LayerNorm when `centre`, RMSNorm otherwise — times `γ`,
/// plus `β` when given, computed by one fused CubeCL kernel ([`crate::kernels::row_norm`]) on
/// the CubeCL aliases; `None` otherwise, for the portable path. `γ`, `β` are `[width]`, or
/// `[samples, width]` for `x` `[samples, …, width]` (per-sample modulation).
pub fn fused_row_norm<B: Backend, const D: usize, const A: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, A>,
    beta: Option<&Tensor<B, A>>,
    epsilon: f64,
    centre: bool,
) -> Option<Tensor<B, D>> {
    #[cfg(feature = "cube-kernels")]
    {
        let kernel = crate::kernels::row_norm::RowNorm {
            epsilon,
            centre,
            has_beta: beta.is_some(),
        };
        fused(&kernel, x, gamma, beta.unwrap_or(gamma))
    }
    #[cfg(not(feature = "cube-kernels"))]
    {
        let _ = (x, gamma, beta, epsilon, centre);
        None
    }
}

/// The dense bilinear sampling matrix `[batch, heads, cells, cells]` of single-level
/// deformable attention on a `grid` (`[height, width]`, one query per cell): entry `[b, h, q,
/// c]` sums, over the points `p`, `alpha[b, q, h, p]` times the bilinear weight of cell `c` at
/// query `q`'s position plus `offsets[b, q, h, p]` (`(x, y)`, in cells; corners outside the grid
/// add nothing). `alpha` is `[batch, cells, heads, points]`, `offsets` `[batch, cells, heads,
/// points, 2]`. One CubeCL kernel ([`crate::kernels::sampling`]) on the wgpu and CUDA
/// backends; `None` otherwise, or for operands that do not fit the grid.
pub fn fused_sampling_matrix<B: Backend>(
    alpha: &Tensor<B, 4>,
    offsets: &Tensor<B, 5>,
    grid: [usize; 2],
) -> Option<Tensor<B, 4>> {
    #[cfg(feature = "cube-kernels")]
    {
        let kernel = crate::kernels::sampling::SamplingMatrix { grid };
        fused(&kernel, alpha, offsets, offsets)
    }
    #[cfg(not(feature = "cube-kernels"))]
    {
        let _ = (alpha, offsets, grid);
        None
    }
}

/// `x·W (+ b)` over the last axis of `x` (`[…, k]`, `W` `[k, n]`, `b` `[n]`) computed by
/// cuBLASLt (`kernels::cublaslt`, built with the `cuda` feature) when `B` is `Cuda` or
/// `CudaBf16`, cuBLASLt loads and it is [enabled](use_library); `None` otherwise, for Burn's
/// matmul.
pub fn fused_linear<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
) -> Option<Tensor<B, D>> {
    #[cfg(feature = "cuda")]
    {
        let kernel = crate::kernels::cublaslt::Linear {
            has_bias: bias.is_some(),
        };
        let bias = match bias {
            Some(b) => b.clone().unsqueeze_dim(0),
            None => weight.clone(),
        };
        fused(&kernel, x, weight, &bias)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, weight, bias);
        None
    }
}

/// `scale · lhs·rhs` for `lhs` `[batch, m, k]` and `rhs` `[batch, k, n]` as one strided
/// batched cuBLASLt GEMM (`kernels::cublaslt`, built with the `cuda` feature; a transposed
/// view such as `k.swap_dims(1, 2)` is read in place) when `B` is `Cuda` or `CudaBf16`,
/// cuBLASLt loads and it is [enabled](use_library); `None` otherwise, for Burn's matmul.
pub fn fused_batched_matmul<B: Backend>(
    lhs: &Tensor<B, 3>,
    rhs: &Tensor<B, 3>,
    scale: f32,
) -> Option<Tensor<B, 3>> {
    #[cfg(feature = "cuda")]
    {
        let kernel = crate::kernels::cublaslt::BatchedMatmul { scale };
        fused(&kernel, lhs, rhs, rhs)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (lhs, rhs, scale);
        None
    }
}

/// The widest head (`d` and `d_v`) [`fused_attention`] takes: cuDNN 9's fused attention
/// engines stop at 256 (128 on Ampere before cuDNN 9.10, where wider heads fall back at run
/// time).
pub const FUSED_ATTENTION_MAX_HEAD_DIM: usize = 256;

/// `softmax(q·kᵀ·scale)·v` for `q` `[batch, heads, s_q, d]`, `k` `[batch, heads, s_kv, d]`,
/// `v` `[batch, heads, s_kv, d_v]` with `options`' scale (default `d^-½`) and causal flag, as
/// cuDNN's fused flash attention (`kernels::cudnn::attention`, built with the `cuda` feature)
/// when `B` is `CudaBf16`, cuDNN 9 loads and is [enabled](use_library), the head sizes are
/// multiples of 8 up to [`FUSED_ATTENTION_MAX_HEAD_DIM`] and there is no soft cap; `None`
/// otherwise, for Burn's attention.
/// Strided views (heads split from a `[batch, tokens, heads·d]` buffer) are read in place, and
/// cuDNN's output is a view of a `[batch, s_q, heads, d_v]` buffer, which merging the heads back
/// (`swap_dims(1, 2)`, then a reshape) reads without a copy.
pub fn fused_attention<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    options: burn::tensor::ops::AttentionModuleOptions,
) -> Option<Tensor<B, 4>> {
    #[cfg(feature = "cuda")]
    {
        if options.softcap.is_some() {
            return None;
        }
        let kernel = crate::kernels::cudnn::attention::Attention {
            scale: crate::nn::attention_scale(options.scale, q.dims()[3]),
            causal: options.is_causal,
        };
        fused(&kernel, q, k, v)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, k, v, options);
        None
    }
}

/// How attention runs on Burn's CUDA backend ([`set_cuda_attention`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaAttention {
    /// The default: cuDNN's fused flash attention ([`fused_attention`]) where it takes the
    /// operands (bf16 or f16, cuDNN 9 installed), else [`Flash`](Self::Flash).
    Cudnn,
    /// Burn's attention, queries padded so its flash kernels take them (causal attention is
    /// not padded).
    Flash,
    /// Two strided batched cuBLASLt GEMMs around Burn's softmax, the scores materialised
    /// ([`crate::nn::attention_unfused`]); Burn's attention where cuBLASLt does not load.
    CublasLt,
}

/// A process-wide choice that every thread reads (the CUDA switches of this module).
struct Choice<T>(std::sync::Mutex<T>);

impl<T: Copy> Choice<T> {
    const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    fn set(&self, value: T) {
        *crate::lock(&self.0) = value;
    }

    fn get(&self) -> T {
        *crate::lock(&self.0)
    }
}

/// The current [`CudaAttention`].
static CUDA_ATTENTION: Choice<CudaAttention> = Choice::new(CudaAttention::Cudnn);

/// Chooses how [`sdpa`](crate::nn::sdpa) computes attention on Burn's CUDA backend from now
/// on (other backends always use Burn's attention).
pub fn set_cuda_attention(kind: CudaAttention) {
    CUDA_ATTENTION.set(kind);
}

/// The current [`set_cuda_attention`] choice.
pub fn cuda_attention() -> CudaAttention {
    CUDA_ATTENTION.get()
}

/// Which cuDNN interface computes convolutions on Burn's CUDA backend
/// ([`set_cuda_convolution`]); both run where [`fused_conv2d`] takes cuDNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CudaConvolution {
    /// The default: cuDNN's legacy `cudnnConvolutionForward`, its algorithm chosen once per
    /// shape by `cudnnGetConvolutionForwardAlgorithm_v7`.
    CudnnLegacy,
    /// cuDNN's graph API, as PyTorch calls it: a one-operation graph per shape, whose
    /// execution plan is made once and queued on each call. A shape no engine takes is
    /// computed by Burn's convolution and counted as a fallback.
    CudnnGraph,
}

/// The current [`CudaConvolution`].
static CUDA_CONVOLUTION: Choice<CudaConvolution> = Choice::new(CudaConvolution::CudnnLegacy);

/// Chooses the cuDNN interface of [`fused_conv2d`] on Burn's CUDA backend from now on.
pub fn set_cuda_convolution(api: CudaConvolution) {
    CUDA_CONVOLUTION.set(api);
}

/// The current [`set_cuda_convolution`] choice.
pub fn cuda_convolution() -> CudaConvolution {
    CUDA_CONVOLUTION.get()
}

/// How calls of NVIDIA's libraries reach CubeCL's device thread on Burn's CUDA backend
/// ([`set_cuda_library_calls`]). Either way a call runs there, in order with Burn's kernel
/// launches, and queues its work on the same CUDA stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaLibraryCalls {
    /// The default: the caller waits until the device thread has run every launch queued
    /// before and the call (`ComputeClient::exclusive`); a call that fails is computed by
    /// Burn's ops instead ([`LibraryStats::fallbacks`]).
    Blocking,
    /// The caller queues the call as it queues a kernel launch and goes on, once a call of
    /// the same plan (operation, sizes, element types, operand alignments) has succeeded
    /// waited for; new plans are still waited for. A queued call that fails anyway cannot be
    /// computed by Burn: its output stays unwritten, it is counted in [`LibraryStats::lost`],
    /// logged, and that library's calls wait from then on.
    Queued,
}

/// The current [`CudaLibraryCalls`].
static CUDA_LIBRARY_CALLS: Choice<CudaLibraryCalls> = Choice::new(CudaLibraryCalls::Blocking);

/// Chooses how calls of NVIDIA's libraries reach the device thread on Burn's CUDA backend from
/// now on.
pub fn set_cuda_library_calls(calls: CudaLibraryCalls) {
    CUDA_LIBRARY_CALLS.set(calls);
}

/// The current [`set_cuda_library_calls`] choice.
pub fn cuda_library_calls() -> CudaLibraryCalls {
    CUDA_LIBRARY_CALLS.get()
}

/// A 2-D convolution of `x` `[n, c, h, w]` with `weight` `[o, c / groups, kh, kw]` (PyTorch's
/// layout) and `bias` `[o]`, symmetric zero `padding`, computed by cuDNN (`kernels::cudnn`,
/// built with the `cuda` feature) when `B` is `Cuda` or `CudaBf16`, cuDNN loads and it is
/// [enabled](use_library); `None` otherwise, for Burn's convolution.
pub fn fused_conv2d<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    options: &burn::tensor::ops::ConvOptions<2>,
) -> Option<Tensor<B, 4>> {
    #[cfg(feature = "cuda")]
    {
        let kernel = crate::kernels::cudnn::Conv2d {
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups: options.groups,
            has_bias: bias.is_some(),
        };
        let bias = match bias {
            Some(b) => b.clone().reshape([1, -1, 1, 1]),
            None => weight.clone(),
        };
        fused(&kernel, x, weight, &bias)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, weight, bias, options);
        None
    }
}

/// An NVIDIA library the CUDA aliases can compute with (loaded at run time when installed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvidiaLibrary {
    /// cuBLASLt: linear layers ([`fused_linear`]) and batched products
    /// ([`fused_batched_matmul`]).
    CublasLt,
    /// cuDNN: 2-D convolutions ([`fused_conv2d`]) and fused attention ([`fused_attention`]).
    Cudnn,
}

impl NvidiaLibrary {
    /// The library's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CublasLt => "cuBLASLt",
            Self::Cudnn => "cuDNN",
        }
    }

    #[cfg(feature = "cuda")]
    fn path(self) -> &'static crate::kernels::nvidia::LibraryPath {
        match self {
            Self::CublasLt => &crate::kernels::cublaslt::CUBLASLT,
            Self::Cudnn => &crate::kernels::cudnn::CUDNN,
        }
    }
}

/// Whether the CUDA aliases compute with `library` (the default when it loads) or with Burn's
/// own kernels. Turning it on fails with the library file names tried when it is not
/// installed, or when this build lacks the `cuda` feature.
pub fn use_library(library: NvidiaLibrary, enabled: bool) -> Result<(), LibraryError> {
    #[cfg(feature = "cuda")]
    {
        library.path().set_enabled(enabled)
    }
    #[cfg(not(feature = "cuda"))]
    {
        if enabled {
            return Err(LibraryError::NotBuilt {
                library: library.name(),
                feature: "cuda",
            });
        }
        Ok(())
    }
}

/// The operations `library` computed, and those routed to it that it declined (computed by
/// Burn's kernels, with the latest reason), since the process started; all zero without the
/// `cuda` feature.
pub fn library_stats(library: NvidiaLibrary) -> LibraryStats {
    #[cfg(feature = "cuda")]
    {
        library.path().stats()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = library;
        LibraryStats::default()
    }
}

/// What [`library_stats`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryStats {
    /// Operations the library computed.
    pub launched: u64,
    /// Operations routed to the library that Burn's kernels computed instead.
    pub fallbacks: u64,
    /// Why the latest fallback (or lost call) happened.
    pub last_failure: Option<String>,
    /// Time the callers spent in the library's path, in microseconds: operands made
    /// contiguous and outputs allocated (queued like Burn's own work), and for calls waited
    /// for ([`CudaLibraryCalls::Blocking`], and every call of a new plan) the call on CubeCL's
    /// device thread: buffers looked up, workspace grown, plan made, library called.
    pub host_micros: u64,
    /// Time inside the library's own functions that queue the work (on the device thread; part
    /// of `host_micros` for the calls waited for).
    pub library_micros: u64,
    /// Time from each call's request until CubeCL's device thread took it (it runs the work
    /// queued before, such as Burn's kernel launches, first); part of `host_micros` for the
    /// calls waited for, which block their caller that long.
    pub queue_micros: u64,
    /// Plans made (descriptors and the chosen algorithm, once per shape, cached after).
    pub plans: u64,
    /// Of `launched`, the calls queued without waiting ([`CudaLibraryCalls::Queued`]).
    pub queued: u64,
    /// Queued calls that failed on the device thread, their outputs left unwritten (0 unless
    /// something is wrong; `last_failure` says what).
    pub lost: u64,
}

/// What a GPU backend's memory pool holds on one device (CubeCL's allocator, which Burn's
/// `Wgpu`, `Cuda` and `CudaBf16` share per device and runtime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes of the live tensors and buffers (padding excluded).
    pub in_use_bytes: u64,
    /// Bytes the pool has allocated from the device (live or free for reuse): the process's
    /// footprint for tensors, the counterpart of PyTorch's `torch.cuda.memory_reserved`.
    pub reserved_bytes: u64,
}

/// The memory pool of `device` when `B` runs on CubeCL's wgpu or CUDA runtime (queued work is
/// not waited for: sync first for a settled figure); `None` on other backends (ndarray) and
/// when the runtime cannot answer.
pub fn device_memory<B: Backend>(device: &B::Device) -> Option<DeviceMemory> {
    #[cfg(feature = "cube-kernels")]
    {
        use cubecl::Runtime;
        use std::any::Any;
        let device: &dyn Any = device;
        let usage = None;
        #[cfg(feature = "wgpu")]
        let usage = usage.or_else(|| {
            let device = device.downcast_ref::<WgpuDevice>()?;
            burn_wgpu::WgpuRuntime::client(device).memory_usage().ok()
        });
        #[cfg(feature = "cuda")]
        let usage = usage.or_else(|| {
            let device = device.downcast_ref::<CudaDevice>()?;
            cubecl::cuda::CudaRuntime::client(device)
                .memory_usage()
                .ok()
        });
        usage.map(|usage| DeviceMemory {
            in_use_bytes: usage.bytes_in_use,
            reserved_bytes: usage.bytes_reserved,
        })
    }
    #[cfg(not(feature = "cube-kernels"))]
    {
        let _ = device;
        None
    }
}

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;

    /// Without the `cuda` feature the NVIDIA libraries cannot be turned on, and say why.
    #[test]
    fn nvidia_libraries_need_the_cuda_feature() {
        for library in [NvidiaLibrary::CublasLt, NvidiaLibrary::Cudnn] {
            let error = use_library(library, true).expect_err("no cuda feature");
            let message = error.to_string();
            assert!(message.contains("`cuda` feature"), "{message}");
            assert!(message.starts_with(library.name()), "{message}");
            assert!(use_library(library, false).is_ok());
            assert_eq!(library_stats(library), LibraryStats::default());
        }
    }
}
