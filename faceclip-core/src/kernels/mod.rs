//! Hand-written CubeCL kernels for Burn's CubeCL backends (wgpu, CUDA), reached through Burn's
//! fusion stream as custom operations so they queue lazily like Burn's own.
//!
//! Everything here is generic over the CubeCL runtime; [`crate::backend`] decides which backend
//! types take these paths, and model code calls the portable entry points in [`crate::nn`]
//! (such as [`group_norm_silu`](crate::nn::group_norm_silu)), which fall back to plain Burn ops
//! on every other backend.

pub mod group_norm;

use std::any::{Any, TypeId};
use std::marker::PhantomData;

use burn::tensor::{backend::Backend, Tensor, TensorPrimitive};
use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use burn_fusion::{
    stream::{Operation, OperationStreams},
    Fusion, FusionBackend, FusionTensor,
};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::backend::GroupNormOperands;

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

/// The fusion stream's record of a [`group_norm::group_norm`] call.
#[derive(Debug)]
struct GroupNormOp<Inner> {
    desc: CustomOpIr,
    groups: usize,
    epsilon: f64,
    silu: bool,
    backend: PhantomData<Inner>,
}

impl<Inner, R> Operation<Inner::FusionRuntime> for GroupNormOp<Inner>
where
    Inner: FusionBackend<FloatTensorPrimitive = CubeTensor<R>>,
    R: CubeRuntime,
{
    fn execute(&self, handles: &mut HandleContainer<Inner::Handle>) {
        let ([x, gamma, beta], [out]) = self.desc.as_fixed::<3, 1>();
        let output = group_norm::group_norm(
            handles.get_float_tensor::<Inner>(x),
            handles.get_float_tensor::<Inner>(gamma),
            handles.get_float_tensor::<Inner>(beta),
            self.groups,
            self.epsilon,
            self.silu,
        );
        handles.register_float_tensor::<Inner>(&out.id, output);
    }
}

/// `GroupNorm(groups, epsilon)` (then SiLU when `silu`) through the fused kernels when `B` is
/// `Fusion<Inner>` and [`group_norm::supports`] the operands; otherwise the operands back.
pub(crate) fn group_norm_on<B, Inner, R, const D: usize>(
    (x, gamma, beta): GroupNormOperands<B, D>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> Result<Tensor<B, D>, GroupNormOperands<B, D>>
where
    B: Backend,
    Inner: FusionBackend<FloatTensorPrimitive = CubeTensor<R>>,
    R: CubeRuntime,
{
    if TypeId::of::<B>() != TypeId::of::<Fusion<Inner>>()
        || !group_norm::supports(&x.shape(), x.dtype(), &gamma.shape(), gamma.dtype(), groups)
        || gamma.dtype() != beta.dtype()
        || gamma.shape() != beta.shape()
    {
        return Err((x, gamma, beta));
    }
    let primitives = (
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
    );
    type Fused<Inner> = FusionTensor<<Inner as FusionBackend>::FusionRuntime>;
    let (x, gamma, beta) = match retype::<_, (Fused<Inner>, Fused<Inner>, Fused<Inner>)>(primitives)
    {
        Ok(fused) => fused,
        Err((x, gamma, beta)) => {
            return Err((
                Tensor::from_primitive(TensorPrimitive::Float(x)),
                Tensor::from_primitive(TensorPrimitive::Float(gamma)),
                Tensor::from_primitive(TensorPrimitive::Float(beta)),
            ));
        }
    };

    let client = x.client.clone();
    let streams = OperationStreams::with_inputs([&x, &gamma, &beta]);
    let out = TensorIr::uninit(client.create_empty_handle(), x.shape.clone(), x.dtype);
    let desc = CustomOpIr::new(
        "faceclip_group_norm",
        &[x.into_ir(), gamma.into_ir(), beta.into_ir()],
        &[out],
    );
    let op = GroupNormOp::<Inner> {
        desc: desc.clone(),
        groups,
        epsilon,
        silu,
        backend: PhantomData,
    };
    let output = client
        .register(streams, OperationIr::Custom(desc), op)
        .pop()
        .expect("a custom operation with one output registers one tensor");
    match retype::<_, B::FloatTensorPrimitive>(output) {
        Ok(output) => Ok(Tensor::from_primitive(TensorPrimitive::Float(output))),
        Err(_) => unreachable!("B's float primitive is Fusion<Inner>'s: its inputs converted"),
    }
}
