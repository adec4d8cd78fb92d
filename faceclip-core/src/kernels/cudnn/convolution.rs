//! 2-D convolutions through cuDNN's graph API ([`CudaConvolution::CudnnGraph`]), the interface
//! PyTorch uses: per shape a graph of one forward-convolution operation on packed NCHW tensors
//! (`f32` accumulation), whose execution plan (engine, workspace size) is made once and kept;
//! each call queues the plan on Burn's stream. A shape no engine takes is remembered, and its
//! convolutions fall back to Burn's (counted as fallbacks). The bias is added by the caller.
//!
//! [`CudaConvolution::CudnnGraph`]: crate::backend::CudaConvolution::CudnnGraph

use std::ffi::c_void;

use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cudarc::cudnn::{result as dnn, sys};

use super::graph::{self, Descriptor, ExecutionPlan, TensorRole};
use super::{data_type, PlanKey, CUDNN};
use crate::kernels::nvidia::{buffers, workspace, Session};

/// Tensor ids in the graph and its variant pack.
mod uid {
    pub const X: i64 = 1;
    pub const W: i64 = 2;
    pub const Y: i64 = 3;
}

/// The cuDNN handle of the graph convolutions and their plans (or why a key has none).
static SESSION: Session<sys::cudnnHandle_t, PlanKey, Result<ExecutionPlan, String>> =
    Session::new(&CUDNN);

/// Queues `output = x ⊛ weight` for `key`'s sizes (all three contiguous); runs on the device
/// thread.
pub(super) fn run(
    key: &PlanKey,
    [x, weight, output]: [&CubeTensor<CudaRuntime>; 3],
) -> Result<(), String> {
    let client = &x.client;
    SESSION.run(
        *key,
        || dnn::create_handle().map_err(|error| error.to_string()),
        |handle| Ok(plan(handle, key)),
        |handle, plan| {
            let plan = plan.as_ref().map_err(Clone::clone)?;
            // The guards hold the buffers until the call is queued.
            let handles = [&x.handle, &weight.handle, &output.handle].map(Some);
            let (addresses, stream, _guards) = buffers(client, handles)?;
            graph::check_aligned(&addresses)?;
            let workspace_ptr = workspace(client, key.device, stream, plan.workspace)?;
            let pointers = addresses.map(|address| address as *mut c_void);
            // SAFETY: the plan was made for these sizes; the addresses are buffers the guards
            // hold until the work is queued on the stream that orders them.
            unsafe {
                plan.execute(
                    handle,
                    stream,
                    (&[uid::X, uid::W, uid::Y], &pointers),
                    workspace_ptr,
                    "running the convolution",
                )
            }
        },
    )
}

/// The execution plan of `key`'s convolution graph.
fn plan(handle: sys::cudnnHandle_t, key: &PlanKey) -> Result<ExecutionPlan, String> {
    graph::cudnn_version("convolution")?;
    let (op, parts) = operation(key)?;
    ExecutionPlan::new(handle, vec![op], parts, "convolution")
}

/// The graph's one operation for `key`, and the tensors and descriptors it refers to (no
/// handle needed).
fn operation(key: &PlanKey) -> Result<(Descriptor, Vec<Descriptor>), String> {
    let io = data_type(key.dtype).ok_or_else(|| format!("no cuDNN type for {:?}", key.dtype))?;
    let packed = |uid, dims: [usize; 4]| {
        let [_, c, h, w] = dims.map(|d| d as i64);
        let dims = dims.map(|d| d as i64);
        graph::tensor(uid, dims, [c * h * w, h * w, w, 1], io, TensorRole::Buffer)
    };
    let x = packed(uid::X, key.dims.x)?;
    let w = packed(uid::W, key.dims.weight)?;
    let y = packed(uid::Y, key.dims.output)?;
    let per_axis = |values: [usize; 2]| values.map(|v| v as i64);
    let mut parts = Vec::new();
    let op = graph::convolution(
        &x,
        &w,
        &y,
        [
            per_axis(key.stride),
            per_axis(key.padding),
            per_axis(key.dilation),
        ],
        &mut parts,
    )?;
    parts.extend([x, w, y]);
    Ok((op, parts))
}

#[cfg(test)]
mod tests {
    use burn::tensor::DType;

    use super::*;
    use crate::kernels::cudnn::ConvDims;

    /// Where cuDNN 9 loads (the GPU hosts, and CPU machines with its wheel on the library
    /// path), the convolution graphs of the models' shapes pass cuDNN's own checks (sizes agree
    /// with the padding, strides and groups; attributes); elsewhere there is nothing to check.
    #[test]
    fn convolution_graphs_finalize_where_cudnn_loads() {
        if CUDNN.available().is_err() {
            return;
        }
        let Ok(version) = graph::cudnn_version("convolution") else {
            return;
        };
        // [x, weight, output] sizes and [stride, padding, dilation].
        let key = |dtype,
                   [x, weight, output]: [[usize; 4]; 3],
                   [stride, padding, dilation]: [usize; 3]| {
            PlanKey {
                device: 0,
                dtype,
                dims: ConvDims { x, weight, output },
                stride: [stride; 2],
                padding: [padding; 2],
                dilation: [dilation; 2],
                groups: x[1] / weight[1],
            }
        };
        let same = [[2, 640, 72, 54], [640, 640, 3, 3], [2, 640, 72, 54]];
        let down = [[2, 320, 144, 108], [320, 320, 3, 3], [2, 320, 72, 54]];
        let shortcut = [[1, 512, 36, 27], [256, 512, 1, 1], [1, 256, 36, 27]];
        let grouped = [[1, 8, 5, 5], [12, 2, 3, 3], [1, 12, 1, 1]];
        for key in [
            // SDXL's 3×3 at 1152×864 (bf16), its downsampler, a 1×1 shortcut (f32), and a
            // grouped, dilated one (f16).
            key(DType::BF16, same, [1, 1, 1]),
            key(DType::BF16, down, [2, 1, 1]),
            key(DType::F32, shortcut, [1, 0, 1]),
            key(DType::F16, grouped, [1, 0, 2]),
        ] {
            let (op, parts) = operation(&key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
            assert_eq!(
                parts.len(),
                4,
                "the convolution descriptor and three tensors"
            );
            drop(op);
        }
        // A size the padding and strides do not give is refused by cuDNN, named.
        let wrong = [[2, 64, 8, 8], [64, 64, 3, 3], [2, 64, 9, 9]];
        let error = operation(&key(DType::BF16, wrong, [1, 1, 1]))
            .expect_err("an inconsistent output size");
        assert!(error.contains("CONVOLUTION_FORWARD"), "{error}");
        println!("cuDNN {version}: the convolution graphs finalise; refused: {error}");
    }
}
