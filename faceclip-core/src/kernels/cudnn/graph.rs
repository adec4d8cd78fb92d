//! cuDNN's graph (backend descriptor) API, as small owned values: a [`Descriptor`] is created,
//! given its attributes, finalised, and destroyed when dropped. The builders name the few
//! tensor and operation kinds fused attention and the convolution need; an [`ExecutionPlan`]
//! is a graph's plan, made once and queued per call.

use std::ffi::{c_char, c_void, CStr};

use cudarc::cudnn::{result as dnn, sys};
use sys::cudnnBackendAttributeName_t as Name;
use sys::cudnnBackendAttributeType_t as Type;
use sys::cudnnBackendDescriptorType_t as Kind;

use super::{CUDNN, MAX_WORKSPACE_BYTES};

/// The oldest cuDNN whose graph API this module drives (and whose `cudnnGetLastErrorString`
/// [`check`] reads: checked by [`cudnn_version`]).
const MIN_VERSION: usize = 90000;
/// How many of each heuristic's engine configurations are tried, best first.
const CONFIGS_TRIED: usize = 8;

/// The loaded cuDNN's version, when its graph API can run this module's graphs (cuDNN 9 or
/// later); call before building any of them. `what` names the graph in the error.
pub(crate) fn cudnn_version(what: &str) -> Result<usize, String> {
    // SAFETY: a plain query of the loaded library.
    let version = unsafe { sys::cudnnGetVersion() };
    if version < MIN_VERSION {
        return Err(format!(
            "{what} through cuDNN's graph API needs cuDNN 9 or later; the loaded cuDNN is \
             {version}"
        ));
    }
    Ok(version)
}

/// `status` as a `Result`, the error naming `what` failed with cuDNN's status and, where cuDNN
/// 9 keeps one, its own explanation of the latest error.
pub(crate) fn check(status: sys::cudnnStatus_t, what: &str) -> Result<(), String> {
    if status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        return Ok(());
    }
    let mut message = [0 as c_char; 512];
    // SAFETY: cuDNN writes at most `len` bytes, NUL-terminated; the symbol exists from
    // cuDNN 9 on, which the caller's version check guarantees.
    let detail = unsafe {
        sys::cudnnGetLastErrorString(message.as_mut_ptr(), message.len());
        CStr::from_ptr(message.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    if detail.is_empty() {
        Err(format!("{what}: {status:?}"))
    } else {
        Err(format!("{what}: {status:?} ({detail})"))
    }
}

/// One backend descriptor, destroyed on drop.
#[derive(Debug)]
pub(crate) struct Descriptor {
    raw: sys::cudnnBackendDescriptor_t,
    kind: Kind,
}

// SAFETY: backend descriptors may be used from any thread, one at a time; their owners keep
// them behind a lock.
unsafe impl Send for Descriptor {}

impl Descriptor {
    /// A new descriptor of `kind`, not finalised.
    pub(crate) fn new(kind: Kind) -> Result<Self, String> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: cuDNN writes the new descriptor into `raw`.
        check(
            unsafe { sys::cudnnBackendCreateDescriptor(kind, &mut raw) },
            &format!("creating {kind:?}"),
        )?;
        Ok(Self { raw, kind })
    }

    /// The raw descriptor, for passing to cuDNN.
    pub(crate) fn raw(&self) -> sys::cudnnBackendDescriptor_t {
        self.raw
    }

    /// Sets attribute `name` to `values`, which must be of the C type cuDNN reads for `kind`
    /// (`i64` for `INT64`, `bool` for `BOOLEAN`, 4-byte enums, pointers).
    pub(crate) fn set<T: Copy>(&self, name: Name, kind: Type, values: &[T]) -> Result<(), String> {
        // SAFETY: `values` holds `values.len()` elements of the type the caller names.
        let status = unsafe {
            sys::cudnnBackendSetAttribute(
                self.raw,
                name,
                kind,
                values.len() as i64,
                values.as_ptr().cast::<c_void>(),
            )
        };
        check(status, &format!("{:?}: setting {name:?}", self.kind))
    }

    /// Sets attribute `name` to other descriptors.
    pub(crate) fn set_descriptors(&self, name: Name, values: &[&Descriptor]) -> Result<(), String> {
        let raw: Vec<_> = values.iter().map(|d| d.raw).collect();
        self.set(name, Type::CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw)
    }

    /// Finalises the descriptor (cuDNN checks its attributes now).
    pub(crate) fn finalize(self) -> Result<Self, String> {
        // SAFETY: the descriptor is live.
        check(
            unsafe { sys::cudnnBackendFinalize(self.raw) },
            &format!("finalising {:?}", self.kind),
        )?;
        Ok(self)
    }

    /// The `INT64` attribute `name` of a finalised descriptor.
    pub(crate) fn get_i64(&self, name: Name) -> Result<i64, String> {
        let mut value = 0i64;
        let mut count = 0i64;
        // SAFETY: room for one `i64`.
        let status = unsafe {
            sys::cudnnBackendGetAttribute(
                self.raw,
                name,
                Type::CUDNN_TYPE_INT64,
                1,
                &mut count,
                (&mut value as *mut i64).cast(),
            )
        };
        check(status, &format!("{:?}: reading {name:?}", self.kind))?;
        Ok(value)
    }

    /// Up to `most` descriptors of `kind` that attribute `name` lists.
    pub(crate) fn get_descriptors(
        &self,
        name: Name,
        kind: Kind,
        most: usize,
    ) -> Result<Vec<Descriptor>, String> {
        // cuDNN fills descriptors the caller created.
        let mut items = (0..most)
            .map(|_| Descriptor::new(kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut raw: Vec<_> = items.iter().map(|d| d.raw).collect();
        let mut count = 0i64;
        // SAFETY: `raw` holds `most` live descriptors of the kind the attribute lists.
        let status = unsafe {
            sys::cudnnBackendGetAttribute(
                self.raw,
                name,
                Type::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                most as i64,
                &mut count,
                raw.as_mut_ptr().cast(),
            )
        };
        check(status, &format!("{:?}: reading {name:?}", self.kind))?;
        items.truncate(count.clamp(0, most as i64) as usize);
        Ok(items)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: created by `new`, destroyed once.
        unsafe {
            let _ = sys::cudnnBackendDestroyDescriptor(self.raw);
        }
    }
}

/// What a tensor of the graph is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TensorRole {
    /// A buffer the caller passes (an operand or a result).
    Buffer,
    /// An intermediate the fused kernel keeps to itself.
    Virtual,
    /// A host scalar passed by value when the graph runs.
    ByValue,
}

/// The alignment, in bytes, every buffer [`tensor`] declares.
const BUFFER_ALIGNMENT: u64 = 16;

/// Whether device buffers at `addresses` have the alignment [`tensor`] declares; the error
/// names the first that does not.
pub(crate) fn check_aligned(addresses: &[u64]) -> Result<(), String> {
    match addresses.iter().find(|a| *a % BUFFER_ALIGNMENT != 0) {
        Some(address) => Err(format!(
            "operand at {address:#x} is not {BUFFER_ALIGNMENT}-byte aligned"
        )),
        None => Ok(()),
    }
}

/// A finalised tensor descriptor: `dims` and `strides` in elements, buffers aligned to
/// `BUFFER_ALIGNMENT` bytes.
pub(crate) fn tensor(
    uid: i64,
    dims: [i64; 4],
    strides: [i64; 4],
    data: sys::cudnnDataType_t,
    role: TensorRole,
) -> Result<Descriptor, String> {
    let tensor = Descriptor::new(Kind::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_UNIQUE_ID,
        Type::CUDNN_TYPE_INT64,
        &[uid],
    )?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_DATA_TYPE,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[data],
    )?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_DIMENSIONS,
        Type::CUDNN_TYPE_INT64,
        &dims,
    )?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_STRIDES,
        Type::CUDNN_TYPE_INT64,
        &strides,
    )?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT,
        Type::CUDNN_TYPE_INT64,
        &[BUFFER_ALIGNMENT as i64],
    )?;
    tensor.set(
        Name::CUDNN_ATTR_TENSOR_IS_VIRTUAL,
        Type::CUDNN_TYPE_BOOLEAN,
        &[role == TensorRole::Virtual],
    )?;
    if role == TensorRole::ByValue {
        tensor.set(
            Name::CUDNN_ATTR_TENSOR_IS_BY_VALUE,
            Type::CUDNN_TYPE_BOOLEAN,
            &[true],
        )?;
    }
    tensor.finalize()
}

/// A finalised batched matrix product `c = a·b` computed in `f32`; the descriptors the
/// operation refers to are pushed to `keep` (they must live as long as it).
pub(crate) fn matmul(
    a: &Descriptor,
    b: &Descriptor,
    c: &Descriptor,
    keep: &mut Vec<Descriptor>,
) -> Result<Descriptor, String> {
    let product = Descriptor::new(Kind::CUDNN_BACKEND_MATMUL_DESCRIPTOR)?;
    product.set(
        Name::CUDNN_ATTR_MATMUL_COMP_TYPE,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[sys::cudnnDataType_t::CUDNN_DATA_FLOAT],
    )?;
    let product = product.finalize()?;
    let slots = [
        (Name::CUDNN_ATTR_OPERATION_MATMUL_ADESC, a),
        (Name::CUDNN_ATTR_OPERATION_MATMUL_BDESC, b),
        (Name::CUDNN_ATTR_OPERATION_MATMUL_CDESC, c),
        (Name::CUDNN_ATTR_OPERATION_MATMUL_DESC, &product),
    ];
    let op = operation(Kind::CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, &slots, &[])?;
    keep.push(product);
    Ok(op)
}

/// A finalised operation of `kind` whose descriptor-valued attributes are `slots` and whose
/// `float`-valued ones are `factors`.
fn operation(
    kind: Kind,
    slots: &[(Name, &Descriptor)],
    factors: &[(Name, f32)],
) -> Result<Descriptor, String> {
    let op = Descriptor::new(kind)?;
    for (name, value) in slots {
        op.set_descriptors(*name, &[value])?;
    }
    for (name, value) in factors {
        op.set(*name, Type::CUDNN_TYPE_FLOAT, &[*value])?;
    }
    op.finalize()
}

/// An element-wise function: its mode, the precision it computes in, and for `GEN_INDEX` the
/// axis whose index it generates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Function {
    /// What it computes.
    pub mode: sys::cudnnPointwiseMode_t,
    /// The type it computes in.
    pub precision: sys::cudnnDataType_t,
    /// The axis whose index `GEN_INDEX` generates.
    pub axis: Option<i64>,
}

impl Function {
    /// `mode` computed in `f32`.
    pub(crate) fn float(mode: sys::cudnnPointwiseMode_t) -> Self {
        Self {
            mode,
            precision: sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            axis: None,
        }
    }
}

/// A finalised element-wise operation `y = f(x)`, `f(x, b)` (broadcasting `b`) or, for
/// `BINARY_SELECT`, `t ? x : b` — `inputs` are `[x]`, `[x, b]` or `[x, b, t]`; its function
/// descriptor is pushed to `keep`.
pub(crate) fn pointwise(
    f: Function,
    inputs: &[&Descriptor],
    y: &Descriptor,
    keep: &mut Vec<Descriptor>,
) -> Result<Descriptor, String> {
    let function = Descriptor::new(Kind::CUDNN_BACKEND_POINTWISE_DESCRIPTOR)?;
    function.set(
        Name::CUDNN_ATTR_POINTWISE_MODE,
        Type::CUDNN_TYPE_POINTWISE_MODE,
        &[f.mode],
    )?;
    function.set(
        Name::CUDNN_ATTR_POINTWISE_MATH_PREC,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[f.precision],
    )?;
    if let Some(axis) = f.axis {
        function.set(
            Name::CUDNN_ATTR_POINTWISE_AXIS,
            Type::CUDNN_TYPE_INT64,
            &[axis],
        )?;
    }
    let function = function.finalize()?;
    let op = Descriptor::new(Kind::CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR)?;
    op.set_descriptors(
        Name::CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
        &[&function],
    )?;
    let slots = [
        Name::CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
        Name::CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
        Name::CUDNN_ATTR_OPERATION_POINTWISE_TDESC,
    ];
    if inputs.is_empty() || inputs.len() > slots.len() {
        return Err(format!("{:?} with {} inputs", f.mode, inputs.len()));
    }
    for (slot, input) in slots.into_iter().zip(inputs) {
        op.set_descriptors(slot, &[input])?;
    }
    op.set_descriptors(Name::CUDNN_ATTR_OPERATION_POINTWISE_YDESC, &[y])?;
    keep.push(function);
    op.finalize()
}

/// A finalised reduction of `x` to `y`'s shape (the axes where `y` has size 1) computed in
/// `f32`; its function descriptor is pushed to `keep`.
pub(crate) fn reduction(
    operator: sys::cudnnReduceTensorOp_t,
    x: &Descriptor,
    y: &Descriptor,
    keep: &mut Vec<Descriptor>,
) -> Result<Descriptor, String> {
    let function = Descriptor::new(Kind::CUDNN_BACKEND_REDUCTION_DESCRIPTOR)?;
    function.set(
        Name::CUDNN_ATTR_REDUCTION_OPERATOR,
        Type::CUDNN_TYPE_REDUCTION_OPERATOR_TYPE,
        &[operator],
    )?;
    function.set(
        Name::CUDNN_ATTR_REDUCTION_COMP_TYPE,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[sys::cudnnDataType_t::CUDNN_DATA_FLOAT],
    )?;
    let function = function.finalize()?;
    let slots = [
        (Name::CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x),
        (Name::CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y),
        (Name::CUDNN_ATTR_OPERATION_REDUCTION_DESC, &function),
    ];
    let op = operation(
        Kind::CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR,
        &slots,
        &[],
    )?;
    keep.push(function);
    Ok(op)
}

/// A finalised 2-D forward convolution (cross-correlation) `y = x ⊛ w` computed in `f32`, with
/// `[stride, padding, dilation]` per spatial axis (height, width; padding on both sides); its
/// convolution descriptor is pushed to `keep`.
pub(crate) fn convolution(
    x: &Descriptor,
    w: &Descriptor,
    y: &Descriptor,
    [stride, padding, dilation]: [[i64; 2]; 3],
    keep: &mut Vec<Descriptor>,
) -> Result<Descriptor, String> {
    let conv = Descriptor::new(Kind::CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR)?;
    conv.set(
        Name::CUDNN_ATTR_CONVOLUTION_COMP_TYPE,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[sys::cudnnDataType_t::CUDNN_DATA_FLOAT],
    )?;
    conv.set(
        Name::CUDNN_ATTR_CONVOLUTION_CONV_MODE,
        Type::CUDNN_TYPE_CONVOLUTION_MODE,
        &[sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION],
    )?;
    conv.set(
        Name::CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS,
        Type::CUDNN_TYPE_INT64,
        &[2i64],
    )?;
    for (name, values) in [
        (Name::CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, stride),
        (Name::CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, padding),
        (Name::CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, padding),
        (Name::CUDNN_ATTR_CONVOLUTION_DILATIONS, dilation),
    ] {
        conv.set(name, Type::CUDNN_TYPE_INT64, &values)?;
    }
    let conv = conv.finalize()?;
    let slots = [
        (Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x),
        (Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w),
        (Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y),
        (
            Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
            &conv,
        ),
    ];
    // y = 1·(x ⊛ w) + 0·y, the factors as `float` (cuDNN's type for every compute type but
    // double).
    let factors = [
        (Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, 1.0),
        (Name::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, 0.0),
    ];
    let op = operation(
        Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        &slots,
        &factors,
    )?;
    keep.push(conv);
    Ok(op)
}

/// A graph's execution plan: the engine configuration chosen for it, the workspace it needs,
/// and every descriptor the plan refers to (kept alive with it).
pub(crate) struct ExecutionPlan {
    plan: Descriptor,
    /// Bytes of workspace each run needs.
    pub(crate) workspace: usize,
    _graph: Vec<Descriptor>,
}

impl ExecutionPlan {
    /// The plan of the graph of `ops` (in order; `parts` are the tensors and descriptors they
    /// refer to): the first engine configuration, of cuDNN's ranked heuristic and then of its
    /// fallback list (as cudnn-frontend tries them), that makes a plan needing at most
    /// `MAX_WORKSPACE_BYTES` of workspace. `what` names the graph in errors. Build the graph
    /// only after [`cudnn_version`] allowed it.
    pub(crate) fn new(
        handle: sys::cudnnHandle_t,
        ops: Vec<Descriptor>,
        parts: Vec<Descriptor>,
        what: &str,
    ) -> Result<Self, String> {
        let op_graph = Descriptor::new(Kind::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
        op_graph.set(
            Name::CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
            Type::CUDNN_TYPE_HANDLE,
            &[handle],
        )?;
        let op_list: Vec<&Descriptor> = ops.iter().collect();
        op_graph.set_descriptors(Name::CUDNN_ATTR_OPERATIONGRAPH_OPS, &op_list)?;
        let op_graph = op_graph.finalize()?;

        let mut declined = Vec::new();
        for mode in [
            sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_A,
            sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_FALLBACK,
        ] {
            let heuristic = Descriptor::new(Kind::CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)?;
            heuristic.set_descriptors(Name::CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, &[&op_graph])?;
            heuristic.set(
                Name::CUDNN_ATTR_ENGINEHEUR_MODE,
                Type::CUDNN_TYPE_HEUR_MODE,
                &[mode],
            )?;
            let configs = heuristic.finalize().and_then(|heuristic| {
                heuristic.get_descriptors(
                    Name::CUDNN_ATTR_ENGINEHEUR_RESULTS,
                    Kind::CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                    CONFIGS_TRIED,
                )
            });
            let configs = match configs {
                Ok(configs) => configs,
                Err(error) => {
                    declined.push(error);
                    continue;
                }
            };
            for config in configs {
                let made = plan_of(handle, &config).and_then(|plan| {
                    let workspace = plan.get_i64(Name::CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)?;
                    match usize::try_from(workspace) {
                        Ok(bytes) if bytes <= MAX_WORKSPACE_BYTES => Ok((plan, bytes)),
                        _ => Err(format!(
                            "an engine asks for {workspace} bytes of workspace, over the \
                             {MAX_WORKSPACE_BYTES} allowed"
                        )),
                    }
                });
                match made {
                    Ok((plan, workspace)) => {
                        let mut graph = parts;
                        graph.extend(ops);
                        graph.extend([op_graph, config]);
                        return Ok(Self {
                            plan,
                            workspace,
                            _graph: graph,
                        });
                    }
                    Err(error) => declined.push(error),
                }
            }
        }
        Err(if declined.is_empty() {
            format!("cuDNN's heuristics offer no engine for this {what}")
        } else {
            format!(
                "no engine makes a plan for this {what}: {}",
                declined.join("; ")
            )
        })
    }

    /// Queues one run on `stream`, the graph's tensors `ids` at `pointers` (device buffers, or
    /// host scalars for by-value tensors), with `workspace` (at least [`Self::workspace`]
    /// bytes). `what` names the run in errors.
    ///
    /// # Safety
    ///
    /// The pointers must be live, of the layouts the plan was made for, and stay allocated
    /// until the run is queued on `stream`, which must order them.
    pub(crate) unsafe fn execute(
        &self,
        handle: sys::cudnnHandle_t,
        stream: usize,
        (ids, pointers): (&[i64], &[*mut c_void]),
        workspace: u64,
        what: &str,
    ) -> Result<(), String> {
        let pack = Descriptor::new(Kind::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set(
            Name::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
            Type::CUDNN_TYPE_INT64,
            ids,
        )?;
        pack.set(
            Name::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
            Type::CUDNN_TYPE_VOID_PTR,
            pointers,
        )?;
        pack.set(
            Name::CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
            Type::CUDNN_TYPE_VOID_PTR,
            &[workspace as *mut c_void],
        )?;
        let pack = pack.finalize()?;
        // SAFETY: the plan and pack are live; the caller vouches for the addresses.
        CUDNN.in_library(|| unsafe {
            dnn::set_stream(handle, stream as sys::cudaStream_t)
                .map_err(|error| error.to_string())?;
            check(
                sys::cudnnBackendExecute(handle, self.plan.raw(), pack.raw()),
                what,
            )
        })
    }
}

/// A finalised execution plan of engine configuration `config`.
fn plan_of(handle: sys::cudnnHandle_t, config: &Descriptor) -> Result<Descriptor, String> {
    let plan = Descriptor::new(Kind::CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)?;
    plan.set(
        Name::CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
        Type::CUDNN_TYPE_HANDLE,
        &[handle],
    )?;
    plan.set_descriptors(Name::CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, &[config])?;
    plan.finalize()
}
