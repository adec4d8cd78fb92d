//! Fused (flash) attention through cuDNN's graph API on Burn's CUDA buffers and stream:
//! `softmax(q·kᵀ·scale)·v` for bf16/f16 operands `[batch, heads, tokens, head_dim]` as one
//! cuDNN kernel that never writes the scores, the engine PyTorch's SDPA also reaches on NVIDIA
//! GPUs. The graph is the one cuDNN's flash-attention engines recognise (as NVIDIA's
//! cudnn-frontend describes it for cuDNN 9 before 9.21): `q·kᵀ` → `×scale` → (causal: keys
//! after the query's row index set to the lowest float) → row max → subtract → `exp` → row sum
//! → (`log` + max: the softmax statistics, kept virtual) → divide → `·v`.
//! The operands are read with their strides (a `[batch, tokens, heads, head_dim]` buffer seen
//! as `[batch, heads, tokens, head_dim]` needs no copy; `kᵀ` is `k` with its last two strides
//! swapped), and the output is written with the heads interleaved, a `[batch, tokens, heads,
//! head_dim]` buffer seen as `[batch, heads, tokens, head_dim]` (as PyTorch's fused kernels
//! leave it), so that merging the heads back (`swap_dims(1, 2)`, then a reshape to `[batch,
//! tokens, heads·head_dim]`) copies nothing. One plan (graph, engine, workspace size) per
//! layout is kept for the process; a layout cuDNN declines is remembered and computed by Burn's
//! attention, counted as a fallback.

use std::ffi::c_void;

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, DType, Shape, Tensor, TensorMetadata, TensorPrimitive};
use burn_cubecl::{
    ops::{numeric::empty_device_contiguous_dtype, permute},
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::cuda::CudaRuntime;
use cudarc::cudnn::{result as dnn, sys};
use sys::cudnnPointwiseMode_t as Pointwise;
use sys::cudnnReduceTensorOp_t as Reduce;

use super::graph::{self, Descriptor, ExecutionPlan, TensorRole};
use super::{data_type, CUDNN};
use crate::backend::FUSED_ATTENTION_MAX_HEAD_DIM as MAX_HEAD_DIM;
use crate::kernels::nvidia::{buffers, on_cuda, workspace, Call, Session};
use crate::kernels::FusedKernel;
use crate::nn::{attention_padded_queries, FLASH_QUERY_BLOCK};

/// cuDNN releases whose bf16/f16 fused attention NVIDIA's cudnn-frontend refuses for known bugs.
const BROKEN_VERSIONS: [usize; 2] = [91000, 91001];

/// `softmax(q·kᵀ·scale)·v` of `q` `[b, h, s_q, d]`, `k` `[b, h, s_kv, d]`, `v`
/// `[b, h, s_kv, d_v]` (no mask), the output `[b, h, s_q, d_v]` a view of a contiguous
/// `[b, s_q, h, d_v]` buffer.
#[derive(Clone, Debug)]
pub struct Attention {
    /// The factor on `q·kᵀ` (usually `d^-½`).
    pub scale: f32,
    /// Whether query `i` sees only keys `0..=i` (PyTorch's `is_causal`, top-left aligned).
    pub causal: bool,
}

/// The sizes of the three operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizes {
    q: [usize; 4],
    k: [usize; 4],
    v: [usize; 4],
}

impl Sizes {
    /// The sizes, when the operands are attention's and cuDNN's engines may take them.
    fn of(q: &Shape, k: &Shape, v: &Shape) -> Option<Self> {
        let dims = |s: &Shape| <[usize; 4]>::try_from(s.as_slice()).ok();
        let (q, k, v) = (dims(q)?, dims(k)?, dims(v)?);
        let head_fits = |d: usize| d > 0 && d.is_multiple_of(8) && d <= MAX_HEAD_DIM;
        let fits = q[..2] == k[..2]
            && k[..3] == v[..3]
            && q[3] == k[3]
            && head_fits(q[3])
            && head_fits(v[3])
            && [q, k, v].iter().all(|d| d.iter().all(|s| *s > 0));
        fits.then_some(Self { q, k, v })
    }

    /// The output's sizes, `[b, h, s_q, d_v]`.
    fn output(&self) -> [usize; 4] {
        [self.q[0], self.q[1], self.q[2], self.v[3]]
    }

    /// The output buffer's sizes, heads interleaved: `[b, s_q, h, d_v]`.
    fn output_stored(&self) -> [usize; 4] {
        let [b, h, s_q, d_v] = self.output();
        [b, s_q, h, d_v]
    }
}

/// One operand as cuDNN sees it: sizes and strides in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Layout {
    dims: [i64; 4],
    strides: [i64; 4],
}

impl Layout {
    /// `tensor`'s layout when its innermost stride is 1 (what cuDNN needs), else `None`.
    fn of(tensor: &CubeTensor<CudaRuntime>) -> Option<Self> {
        let dims = <[usize; 4]>::try_from(tensor.shape().as_slice()).ok()?;
        let strides: &[usize] = tensor.meta.strides();
        let strides = <[usize; 4]>::try_from(strides).ok()?;
        (strides[3] == 1).then(|| Self {
            dims: dims.map(|d| d as i64),
            strides: strides.map(|s| s as i64),
        })
    }

    /// Row-major strides of `dims`.
    fn packed(dims: [i64; 4]) -> Self {
        Self {
            dims,
            strides: [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1],
        }
    }

    /// `[b, h, s, d]` stored as a contiguous `[b, s, h, d]` buffer: what merging the heads back
    /// (`swap_dims(1, 2)`, then a reshape) reads without a copy.
    fn heads_interleaved(dims: [i64; 4]) -> Self {
        let [_, h, s, d] = dims;
        Self {
            dims,
            strides: [s * h * d, d, h * d, 1],
        }
    }

    /// This `[b, h, s, d]` operand read as its transpose `[b, h, d, s]`.
    fn transposed(self) -> Self {
        let [b, h, s, d] = self.dims;
        let [sb, sh, ss, sd] = self.strides;
        Self {
            dims: [b, h, d, s],
            strides: [sb, sh, sd, ss],
        }
    }
}

/// What selects a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    device: usize,
    dtype: DType,
    causal: bool,
    q: Layout,
    k: Layout,
    v: Layout,
}

/// `tensor` as-is when cuDNN can read it (rank 4, innermost stride 1), else a contiguous
/// copy, with its layout.
fn readable(tensor: CubeTensor<CudaRuntime>) -> Option<(CubeTensor<CudaRuntime>, Layout)> {
    match Layout::of(&tensor) {
        Some(layout) => Some((tensor, layout)),
        None => {
            let tensor = burn_cubecl::kernel::into_contiguous(tensor);
            Layout::of(&tensor).map(|layout| (tensor, layout))
        }
    }
}

/// Tensor ids in the graph and its variant pack.
mod uid {
    pub const Q: i64 = 1;
    pub const K_T: i64 = 2;
    pub const V: i64 = 3;
    pub const O: i64 = 4;
    pub const SCALE: i64 = 5;
    /// The value masked scores take (causal attention).
    pub const MASKED: i64 = 6;
    /// The first id of the virtual intermediates.
    pub const VIRTUAL: i64 = 100;
}

/// The execution plan of one key's attention graph (or why it has none).
fn plan(handle: sys::cudnnHandle_t, key: &PlanKey) -> Result<ExecutionPlan, String> {
    let version = graph::cudnn_version("fused attention")?;
    if BROKEN_VERSIONS.contains(&version) {
        return Err(format!(
            "cuDNN {version} has known bugs in fused bf16/f16 attention; use 9.10.2 or later"
        ));
    }
    let parts = operations(key)?;
    ExecutionPlan::new(handle, parts.ops, parts.other, "attention")
}

/// A graph's operations, in order, and the descriptors they refer to.
struct Operations {
    ops: Vec<Descriptor>,
    other: Vec<Descriptor>,
}

/// The attention graph's tensors and operations for `key` (no handle needed).
fn operations(key: &PlanKey) -> Result<Operations, String> {
    use sys::cudnnDataType_t::{CUDNN_DATA_BOOLEAN, CUDNN_DATA_FLOAT, CUDNN_DATA_INT32};
    use TensorRole::{Buffer, ByValue, Virtual};
    let io = data_type(key.dtype).ok_or_else(|| format!("no cuDNN type for {:?}", key.dtype))?;
    let [b, h, s_q, _] = key.q.dims;
    let s_kv = key.k.dims[2];
    let d_v = key.v.dims[3];
    let scores = Layout::packed([b, h, s_q, s_kv]);
    let rows = Layout {
        dims: [b, h, s_q, 1],
        strides: [h * s_q, s_q, 1, 1],
    };
    let buffer = |uid, layout: Layout| graph::tensor(uid, layout.dims, layout.strides, io, Buffer);
    let scalar = |uid| graph::tensor(uid, [1; 4], [1; 4], CUDNN_DATA_FLOAT, ByValue);
    // Indices in `tensors` of the operands and the scale.
    let (q, k_t, v, o, scale) = (0, 1, 2, 3, 4);
    let mut tensors = vec![
        buffer(uid::Q, key.q)?,
        buffer(uid::K_T, key.k.transposed())?,
        buffer(uid::V, key.v)?,
        buffer(uid::O, Layout::heads_interleaved([b, h, s_q, d_v]))?,
        scalar(uid::SCALE)?,
    ];
    // Adds a virtual tensor and returns its index in `tensors`.
    let mut next_uid = uid::VIRTUAL;
    let mut intermediate = |tensors: &mut Vec<Descriptor>, layout: Layout, data| {
        next_uid += 1;
        let tensor = graph::tensor(next_uid, layout.dims, layout.strides, data, Virtual)?;
        tensors.push(tensor);
        Ok::<_, String>(tensors.len() - 1)
    };
    let float = |mode| Step::Pointwise(graph::Function::float(mode));
    // (operation, input indices, output index) in graph order.
    let mut steps = Vec::new();
    let raw = intermediate(&mut tensors, scores, CUDNN_DATA_FLOAT)?;
    let mut scaled = intermediate(&mut tensors, scores, CUDNN_DATA_FLOAT)?;
    steps.extend([
        (Step::Matmul, vec![q, k_t], raw),
        (
            float(Pointwise::CUDNN_POINTWISE_MUL),
            vec![raw, scale],
            scaled,
        ),
    ]);
    if key.causal {
        let index = |axis| {
            Step::Pointwise(graph::Function {
                mode: Pointwise::CUDNN_POINTWISE_GEN_INDEX,
                precision: CUDNN_DATA_INT32,
                axis: Some(axis),
            })
        };
        let at_or_before = Step::Pointwise(graph::Function {
            mode: Pointwise::CUDNN_POINTWISE_CMP_GE,
            precision: CUDNN_DATA_BOOLEAN,
            axis: None,
        });
        let row = intermediate(&mut tensors, scores, CUDNN_DATA_INT32)?;
        let column = intermediate(&mut tensors, scores, CUDNN_DATA_INT32)?;
        let visible = intermediate(&mut tensors, scores, CUDNN_DATA_BOOLEAN)?;
        tensors.push(scalar(uid::MASKED)?);
        let masked_value = tensors.len() - 1;
        let masked = intermediate(&mut tensors, scores, CUDNN_DATA_FLOAT)?;
        steps.extend([
            (index(2), vec![scaled], row),
            (index(3), vec![scaled], column),
            (at_or_before, vec![row, column], visible),
            (
                float(Pointwise::CUDNN_POINTWISE_BINARY_SELECT),
                vec![scaled, masked_value, visible],
                masked,
            ),
        ]);
        scaled = masked;
    }
    let max = intermediate(&mut tensors, rows, CUDNN_DATA_FLOAT)?;
    let centred = intermediate(&mut tensors, scores, CUDNN_DATA_FLOAT)?;
    let exp = intermediate(&mut tensors, scores, CUDNN_DATA_FLOAT)?;
    let sum = intermediate(&mut tensors, rows, CUDNN_DATA_FLOAT)?;
    let log_sum = intermediate(&mut tensors, rows, CUDNN_DATA_FLOAT)?;
    let stats = intermediate(&mut tensors, rows, CUDNN_DATA_FLOAT)?;
    let probabilities = intermediate(&mut tensors, scores, io)?;
    steps.extend([
        (
            Step::Reduce(Reduce::CUDNN_REDUCE_TENSOR_MAX),
            vec![scaled],
            max,
        ),
        (
            float(Pointwise::CUDNN_POINTWISE_SUB),
            vec![scaled, max],
            centred,
        ),
        (float(Pointwise::CUDNN_POINTWISE_EXP), vec![centred], exp),
        (
            Step::Reduce(Reduce::CUDNN_REDUCE_TENSOR_ADD),
            vec![exp],
            sum,
        ),
        (float(Pointwise::CUDNN_POINTWISE_LOG), vec![sum], log_sum),
        (
            float(Pointwise::CUDNN_POINTWISE_ADD),
            vec![max, log_sum],
            stats,
        ),
        (
            float(Pointwise::CUDNN_POINTWISE_DIV),
            vec![exp, sum],
            probabilities,
        ),
        (Step::Matmul, vec![probabilities, v], o),
    ]);

    let mut other = Vec::new();
    let ops = steps
        .into_iter()
        .map(|(step, inputs, output)| {
            let inputs: Vec<&Descriptor> = inputs.iter().map(|i| &tensors[*i]).collect();
            let (output, keep) = (&tensors[output], &mut other);
            match step {
                Step::Matmul => graph::matmul(inputs[0], inputs[1], output, keep),
                Step::Pointwise(f) => graph::pointwise(f, &inputs, output, keep),
                Step::Reduce(operator) => graph::reduction(operator, inputs[0], output, keep),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    other.extend(tensors);
    Ok(Operations { ops, other })
}

/// One operation of the attention graph.
enum Step {
    /// `c = a·b`.
    Matmul,
    /// An element-wise function.
    Pointwise(graph::Function),
    /// A reduction to the output's shape.
    Reduce(Reduce),
}

/// The cuDNN handle of the attention plans and the plans (or why a key has none).
static SESSION: Session<sys::cudnnHandle_t, PlanKey, Result<ExecutionPlan, String>> =
    Session::new(&super::CUDNN);

impl Attention {
    /// The cuDNN call on CUDA tensors.
    fn prepare(&self, [q, k, v]: [CubeTensor<CudaRuntime>; 3]) -> Result<Call, String> {
        let sizes = Sizes::of(&q.shape(), &k.shape(), &v.shape())
            .ok_or("operands attention does not take")?;
        let readable = |t| readable(t).ok_or("an operand of rank other than 4");
        let ((q, q_layout), (k, k_layout), (v, v_layout)) =
            (readable(q)?, readable(k)?, readable(v)?);
        let output = empty_device_contiguous_dtype(
            q.client.clone(),
            q.device.clone(),
            Shape::from(sizes.output_stored().to_vec()),
            q.dtype,
        );
        let key = PlanKey {
            device: q.device.index,
            dtype: q.dtype,
            causal: self.causal,
            q: q_layout,
            k: k_layout,
            v: v_layout,
        };
        let queue = {
            let operands = [q.clone(), k.clone(), v.clone(), output.clone()];
            let scale = self.scale;
            move || run(&key, &operands, scale)
        };
        // [b, s_q, h, d_v] seen as [b, h, s_q, d_v].
        let seen = permute(output.clone(), &[0, 2, 1, 3]);
        let operands = [&q.handle, &k.handle, &v.handle, &output.handle];
        Ok(Call::new(("attention", key), &operands, seen, queue))
    }
}

/// Queues `output = softmax(q·kᵀ·scale)·v` for `key`'s layouts (`[q, k, v, output]`); runs on
/// the device thread.
fn run(
    key: &PlanKey,
    [q, k, v, output]: &[CubeTensor<CudaRuntime>; 4],
    scale: f32,
) -> Result<(), String> {
    SESSION.run(
        *key,
        || dnn::create_handle().map_err(|error| error.to_string()),
        |handle| Ok(plan(handle, key)),
        |handle, plan| {
            let plan = plan.as_ref().map_err(Clone::clone)?;
            // The guards hold the buffers until the call is queued.
            let handles = [&q.handle, &k.handle, &v.handle, &output.handle];
            let ([q_ptr, k_ptr, v_ptr, o_ptr], stream, _guards) =
                buffers(&q.client, handles.map(Some))?;
            let workspace_ptr = workspace(&q.client, key.device, stream, plan.workspace)?;
            graph::check_aligned(&[q_ptr, k_ptr, v_ptr, o_ptr])?;
            // The by-value scalars, read from host memory when the call is queued.
            let masked = f32::MIN;
            let scalar = |value: &f32| (value as *const f32).cast_mut().cast::<c_void>();
            let mut ids = vec![uid::Q, uid::K_T, uid::V, uid::O, uid::SCALE];
            let mut pointers: Vec<*mut c_void> = [q_ptr, k_ptr, v_ptr, o_ptr]
                .iter()
                .map(|address| *address as *mut c_void)
                .chain([scalar(&scale)])
                .collect();
            if key.causal {
                ids.push(uid::MASKED);
                pointers.push(scalar(&masked));
            }
            // SAFETY: the plan was made for these layouts; the addresses are buffers the
            // guards hold until the work is queued on the stream that orders them, and
            // the scalars (read by value) outlive the call.
            unsafe {
                plan.execute(
                    handle,
                    stream,
                    (&ids, &pointers),
                    workspace_ptr,
                    "running fused attention",
                )
            }
        },
    )
}

impl FusedKernel for Attention {
    const NAME: &'static str = "faceclip_cudnn_attention";

    fn runs_on<R: CubeRuntime>() -> bool {
        on_cuda::<R>()
    }

    fn supports(&self, [q, k, v]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        let fits = Sizes::of(q, k, v).is_some();
        CUDNN.takes(dtypes, |d| matches!(d, DType::BF16 | DType::F16), fits)
    }

    fn output_shape(&self, [q, k, v]: [&Shape; 3]) -> Shape {
        Sizes::of(q, k, v).map_or_else(|| q.clone(), |s| Shape::from(s.output().to_vec()))
    }

    fn launch<B, R>(&self, inputs: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        CUDNN.launch(
            inputs,
            |cuda| {
                self.prepare(cuda)
                    .map_err(|error| format!("attention: {error}"))
            },
            |[q, k, v]| {
                let tensor = |t| Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(t));
                let options = AttentionModuleOptions {
                    scale: Some(f64::from(self.scale)),
                    is_causal: self.causal,
                    ..Default::default()
                };
                attention_padded_queries(
                    tensor(q),
                    tensor(k),
                    tensor(v),
                    options,
                    FLASH_QUERY_BLOCK,
                )
                .into_primitive()
                .tensor()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(q: [usize; 4], k: [usize; 4], v: [usize; 4]) -> Option<[usize; 4]> {
        let shape = |d: [usize; 4]| Shape::from(d.to_vec());
        Sizes::of(&shape(q), &shape(k), &shape(v)).map(|s| s.output())
    }

    #[test]
    fn takes_attention_shapes_cudnn_runs() {
        // SDXL self- and cross-attention, FLUX's joint attention.
        assert_eq!(
            sizes([2, 10, 3888, 64], [2, 10, 3888, 64], [2, 10, 3888, 64]),
            Some([2, 10, 3888, 64])
        );
        assert_eq!(
            sizes([2, 10, 3888, 64], [2, 10, 77, 64], [2, 10, 77, 64]),
            Some([2, 10, 3888, 64])
        );
        assert_eq!(
            sizes([1, 24, 4608, 128], [1, 24, 4608, 128], [1, 24, 4608, 128]),
            Some([1, 24, 4608, 128])
        );
        // A value size of its own.
        assert_eq!(
            sizes([1, 2, 5, 16], [1, 2, 7, 16], [1, 2, 7, 32]),
            Some([1, 2, 5, 32])
        );
        // Head sizes cuDNN's engines refuse, mismatched operands, empty ones.
        assert_eq!(sizes([1, 2, 5, 12], [1, 2, 7, 12], [1, 2, 7, 12]), None);
        assert_eq!(sizes([1, 2, 5, 512], [1, 2, 7, 512], [1, 2, 7, 512]), None);
        assert_eq!(sizes([1, 2, 5, 16], [1, 3, 7, 16], [1, 3, 7, 16]), None);
        assert_eq!(sizes([1, 2, 5, 16], [1, 2, 7, 16], [1, 2, 8, 16]), None);
        assert_eq!(sizes([1, 2, 5, 16], [1, 2, 7, 32], [1, 2, 7, 32]), None);
        assert_eq!(sizes([1, 2, 0, 16], [1, 2, 7, 16], [1, 2, 7, 16]), None);
    }

    #[test]
    fn transposed_layout_swaps_the_last_two_axes() {
        // k as a [b, s, h, d] buffer seen as [b, h, s, d].
        let k = Layout {
            dims: [2, 10, 77, 64],
            strides: [77 * 640, 64, 640, 1],
        };
        let k_t = k.transposed();
        assert_eq!(k_t.dims, [2, 10, 64, 77]);
        assert_eq!(k_t.strides, [77 * 640, 64, 1, 640]);
        assert_eq!(Layout::packed([2, 3, 4, 5]).strides, [60, 20, 5, 1]);
    }

    #[test]
    fn output_is_written_with_the_heads_interleaved() {
        let sizes = Sizes::of(
            &Shape::from(vec![2, 10, 3888, 64]),
            &Shape::from(vec![2, 10, 77, 64]),
            &Shape::from(vec![2, 10, 77, 32]),
        )
        .expect("cross-attention sizes");
        assert_eq!(sizes.output(), [2, 10, 3888, 32]);
        assert_eq!(sizes.output_stored(), [2, 3888, 10, 32]);
        // The output as cuDNN writes it is the stored buffer with axes 1 and 2 swapped, so
        // swapping them back gives the packed `[b, s_q, h, d_v]` a reshape reads in place.
        let o = Layout::heads_interleaved([2, 10, 3888, 32]);
        assert_eq!(o.strides, [3888 * 320, 32, 320, 1]);
        let stored = Layout::packed([2, 3888, 10, 32]);
        let [sb, sh, ss, sd] = o.strides;
        assert_eq!([sb, ss, sh, sd], stored.strides);
    }

    /// Whether cuDNN 9 loads here (the GPU hosts; the graph checks need no GPU).
    fn cudnn_9_loads() -> bool {
        CUDNN.available().is_ok() && graph::cudnn_version("attention").is_ok()
    }

    /// Where cuDNN 9 loads, every tensor and operation of the graph passes cuDNN's own checks
    /// (sizes agree across products, arities, attributes); elsewhere there is nothing to check.
    #[test]
    fn attention_graph_operations_finalize_where_cudnn_loads() {
        if !cudnn_9_loads() {
            return;
        }
        let cross = PlanKey {
            device: 0,
            dtype: DType::BF16,
            causal: false,
            q: Layout {
                dims: [2, 10, 3888, 64],
                strides: [3888 * 640, 64, 640, 1],
            },
            k: Layout::packed([2, 10, 77, 64]),
            v: Layout::packed([2, 10, 77, 64]),
        };
        let graph = operations(&cross).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(graph.ops.len(), 10);
        let causal = PlanKey {
            dtype: DType::F16,
            causal: true,
            q: Layout::packed([2, 20, 77, 64]),
            k: Layout::packed([2, 20, 77, 64]),
            v: Layout::packed([2, 20, 77, 64]),
            ..cross
        };
        let graph = operations(&causal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(graph.ops.len(), 14);
        // SAFETY: a plain query of the loaded library.
        let version = unsafe { sys::cudnnGetVersion() };
        println!("cuDNN {version}: the attention graph's operations finalise");
    }

    /// An operation cuDNN refuses fails with the descriptor kind and cuDNN's own reason.
    #[test]
    fn refused_operations_are_explained() {
        if !cudnn_9_loads() {
            return;
        }
        let io = sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16;
        let tensor = |uid, dims: [i64; 4]| {
            let layout = Layout::packed(dims);
            graph::tensor(uid, dims, layout.strides, io, TensorRole::Buffer).unwrap()
        };
        // Inner sizes 64 and 32 disagree.
        let (a, b, c) = (
            tensor(1, [1, 2, 8, 64]),
            tensor(2, [1, 2, 32, 16]),
            tensor(3, [1, 2, 8, 16]),
        );
        let error = graph::matmul(&a, &b, &c, &mut Vec::new()).expect_err("mismatched product");
        assert!(error.contains("OPERATION_MATMUL_DESCRIPTOR"), "{error}");
        assert!(error.contains("BAD_PARAM"), "{error}");
        // A selection needs its condition.
        let select = graph::Function::float(Pointwise::CUDNN_POINTWISE_BINARY_SELECT);
        let error = graph::pointwise(select, &[&a, &a], &a, &mut Vec::new()).expect_err("arity");
        assert!(error.contains("OPERATION_POINTWISE_DESCRIPTOR"), "{error}");
    }
}
