//! Hand-written CubeCL kernels for Burn's CubeCL backends (wgpu, CUDA), and NVIDIA's cuBLASLt
//! and cuDNN on CUDA (`cublaslt`, `cudnn`, with the `cuda` feature), reached through Burn's
//! fusion stream as custom operations so they queue lazily like Burn's own.
//!
//! Everything here is generic over the CubeCL runtime; [`crate::backend`] decides which backend
//! types take these paths, and model code calls the portable entry points in [`crate::nn`]
//! (such as [`group_norm_silu`](crate::nn::group_norm_silu)), which fall back to plain Burn ops
//! on every other backend.
//!
//! Layouts: every kernel here writes its output dense and row-major, so outputs are allocated
//! with `empty_device_contiguous_dtype`. CubeCL's CUDA runtime lays a plain new tensor out
//! "pitched": a row whose byte width is not a multiple of its alignment (up to 512 bytes) is
//! padded, and the tensor's strides say so. A dense write into such a buffer reads back as
//! garbage (wgpu never pads, so only CUDA showed it: the CUDA parity tests of 2026-11-27).
//! Inputs are read with their strides or made dense first.

#[cfg(feature = "cuda")]
pub mod cublaslt;
#[cfg(feature = "cuda")]
pub mod cudnn;
mod device_thread;
pub mod group_norm;
#[cfg(feature = "cuda")]
pub(crate) mod nvidia;
mod reduce;
pub mod row_norm;
pub mod sampling;
mod workspaces;

use std::any::{Any, TypeId};
use std::fmt::Debug;
use std::marker::PhantomData;

use burn::tensor::{backend::Backend, ops::FloatTensor, DType, Shape, TensorMetadata};
use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use burn_fusion::{
    stream::{Operation, OperationStreams},
    Fusion, FusionBackend, FusionTensor,
};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

/// A kernel of this module with its scalar parameters: three input tensors (the data first),
/// one output of the data's element type (and by default of its shape).
pub trait FusedKernel: Clone + Debug + Send + Sync + 'static {
    /// The operation's name in the fusion stream.
    const NAME: &'static str;

    /// Whether the kernel runs on CubeCL runtime `R` (by default on every one).
    fn runs_on<R: CubeRuntime>() -> bool {
        true
    }

    /// Whether the kernel handles inputs of these shapes and element types (else the caller
    /// keeps its portable path).
    fn supports(&self, shapes: [&Shape; 3], dtypes: [DType; 3]) -> bool;

    /// The output's shape for inputs the kernel [supports](Self::supports) (by default the
    /// data's).
    fn output_shape(&self, shapes: [&Shape; 3]) -> Shape {
        shapes[0].clone()
    }

    /// Queues the kernel on `inputs`' runtime and returns its output, dense and row-major
    /// (see the module's note on layouts); `B` is the backend whose primitives they are, for
    /// any part a kernel leaves to Burn's own operations.
    fn launch<B, R>(&self, inputs: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime;
}

/// The backend a fused backend wraps: `Fusion<Inner>`, for naming the kernels' backend from
/// the public alias.
pub trait FusedBackend {
    /// The wrapped backend, which executes the fused stream's operations.
    type Inner;
}

impl<Inner: FusionBackend> FusedBackend for Fusion<Inner> {
    type Inner = Inner;
}

/// `value` as a `To` when `From` and `To` are the same type, else `value` back.
fn retype<From: 'static, To: 'static>(value: From) -> Result<To, From> {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<To>() {
        Ok(converted) => Ok(*converted),
        Err(boxed) => match boxed.downcast::<From>() {
            Ok(original) => Err(*original),
            Err(_) => unreachable!("a boxed value downcasts to its own type"),
        },
    }
}

/// The fusion stream's record of one kernel call.
#[derive(Debug)]
struct KernelOp<Inner, K> {
    desc: CustomOpIr,
    kernel: K,
    backend: PhantomData<Inner>,
}

impl<Inner, R, K> Operation<Inner::FusionRuntime> for KernelOp<Inner, K>
where
    Inner: FusionBackend<FloatTensorPrimitive = CubeTensor<R>>,
    R: CubeRuntime,
    K: FusedKernel,
{
    fn execute(&self, handles: &mut HandleContainer<Inner::Handle>) {
        let (inputs, [out]) = self.desc.as_fixed::<3, 1>();
        let inputs = inputs
            .each_ref()
            .map(|input| handles.get_float_tensor::<Inner>(input));
        let output = self.kernel.launch::<Inner, R>(inputs);
        handles.register_float_tensor::<Inner>(&out.id, output);
    }
}

/// `kernel` on `inputs` through `Fusion<Inner>`'s stream when `B` is `Fusion<Inner>` and the
/// kernel [supports](FusedKernel::supports) them; otherwise the inputs back.
pub(crate) fn run_on<B, Inner, R, K>(
    kernel: &K,
    inputs: [FloatTensor<B>; 3],
) -> Result<FloatTensor<B>, [FloatTensor<B>; 3]>
where
    B: Backend,
    Inner: FusionBackend<FloatTensorPrimitive = CubeTensor<R>>,
    R: CubeRuntime,
    K: FusedKernel,
{
    let shapes = inputs.each_ref().map(TensorMetadata::shape);
    let dtypes = inputs.each_ref().map(TensorMetadata::dtype);
    if TypeId::of::<B>() != TypeId::of::<Fusion<Inner>>()
        || !K::runs_on::<R>()
        || !kernel.supports(shapes.each_ref(), dtypes)
    {
        return Err(inputs);
    }
    let [x, a, b] = retype::<_, [FusionTensor<Inner::FusionRuntime>; 3]>(inputs)?;
    let client = x.client.clone();
    let streams = OperationStreams::with_inputs([&x, &a, &b]);
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        kernel.output_shape(shapes.each_ref()),
        x.dtype,
    );
    let desc = CustomOpIr::new(K::NAME, &[x.into_ir(), a.into_ir(), b.into_ir()], &[out]);
    let op = KernelOp::<Inner, K> {
        desc: desc.clone(),
        kernel: kernel.clone(),
        backend: PhantomData,
    };
    let output = client
        .register(streams, OperationIr::Custom(desc), op)
        .pop()
        .expect("a custom operation with one output registers one tensor");
    retype(output).map_err(|_| unreachable!("B's float primitive is Fusion<Inner>'s"))
}
