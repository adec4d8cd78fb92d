//! Linear layers through NVIDIA's cuBLASLt on Burn's CUDA buffers and stream: `y = x·W (+ b)`,
//! with the bias added in cuBLASLt's epilogue (loading, device thread, stream and fallback:
//! `kernels::nvidia`). cuBLASLt's heuristic picks the algorithm once per shape, element type,
//! transposition and pointer alignment; the plan is kept for the process.

use std::ffi::c_void;

use burn::tensor::{backend::Backend, DType, Shape, TensorMetadata};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::cuda::CudaRuntime;
use cudarc::cublaslt::{result as lt, sys};

use super::nvidia::{buffers, contiguous, on_cuda, workspace, Call, LibraryPath, Session};
use super::FusedKernel;

/// cuBLASLt's loading, switch and counters.
pub(crate) static CUBLASLT: LibraryPath = LibraryPath::new("cuBLASLt", "cublasLt", probe);

fn probe() -> bool {
    // SAFETY: only opens the library.
    unsafe { sys::is_culib_present() }
}

/// The most workspace an algorithm may ask for (NVIDIA recommends 32 MiB on Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

/// `y = x·W (+ b)` over the last axis of `x` (`[…, k]`) with `W` `[k, n]` (Burn's linear
/// layout, contiguous or a transposed view of PyTorch's `[n, k]`) and `b` `[1, n]`, read only
/// when `has_bias`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Whether the third operand is a bias to add.
    pub has_bias: bool,
}

impl Linear {
    /// `(m, k, n)`: rows of `x`, inner width, output width, when the operands fit.
    fn dims(&self, x: &Shape, weight: &Shape, bias: &Shape) -> Option<(usize, usize, usize)> {
        let (&k, rows) = x.as_slice().split_last()?;
        let &[weight_k, n] = weight.as_slice() else {
            return None;
        };
        let m: usize = rows.iter().product();
        let bias_fits = !self.has_bias || bias.as_slice() == [1, n];
        let fits_i32 = [m, n, k].iter().all(|d| i32::try_from(*d).is_ok());
        (weight_k == k && m > 0 && k > 0 && n > 0 && bias_fits && fits_i32).then_some((m, k, n))
    }

    /// The cuBLASLt call on CUDA tensors.
    fn prepare(&self, [x, weight, bias]: [CubeTensor<CudaRuntime>; 3]) -> Result<Call, String> {
        let x = contiguous(x);
        let (weight, transposed) = rhs_layout(weight);
        let bias = self.has_bias.then(|| contiguous(bias));
        let shape = x.shape();
        let (m, k, n) = self
            .dims(
                &shape,
                &weight.shape(),
                &bias.as_ref().map_or(shape.clone(), |b| b.shape()),
            )
            .ok_or("operands the layer does not take")?;
        let output = empty_device_contiguous_dtype(
            x.client.clone(),
            x.device.clone(),
            output_shape(&shape, n),
            x.dtype,
        );
        let sizes = GemmSizes { batch: 1, m, n, k };
        Ok(gemm_call(x, (weight, transposed), bias, output, sizes, 1.0))
    }
}

impl FusedKernel for Linear {
    const NAME: &'static str = "faceclip_cublaslt_linear";

    fn runs_on<R: CubeRuntime>() -> bool {
        on_cuda::<R>()
    }

    fn supports(&self, [x, weight, bias]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        let fits = self.dims(x, weight, bias).is_some();
        CUBLASLT.takes(dtypes, |d| data_type(d).is_some(), fits)
    }

    fn output_shape(&self, [x, weight, _]: [&Shape; 3]) -> Shape {
        output_shape(x, weight.as_slice().last().copied().unwrap_or(0))
    }

    fn launch<B, R>(&self, inputs: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        CUBLASLT.launch(
            inputs,
            |cuda| self.prepare(cuda),
            |inputs| burn_linear::<B>(inputs, self.has_bias),
        )
    }
}

/// `batch`, `m`, `n`, `k` of a GEMM.
#[derive(Clone, Copy, Debug, Hash)]
struct GemmSizes {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
}

/// The call [`gemm`] makes on these operands (kept until it is queued).
fn gemm_call(
    lhs: CubeTensor<CudaRuntime>,
    (rhs, transposed): (CubeTensor<CudaRuntime>, bool),
    bias: Option<CubeTensor<CudaRuntime>>,
    output: CubeTensor<CudaRuntime>,
    sizes: GemmSizes,
    alpha: f32,
) -> Call {
    let plan = (
        lhs.device.index,
        lhs.dtype,
        sizes,
        transposed,
        bias.is_some(),
    );
    let queue = {
        let (lhs, rhs, bias, output) = (lhs.clone(), rhs.clone(), bias.clone(), output.clone());
        move || {
            gemm(
                &lhs,
                (&rhs, transposed),
                bias.as_ref(),
                &output,
                sizes,
                alpha,
            )
        }
    };
    let mut operands = vec![&lhs.handle, &rhs.handle, &output.handle];
    operands.extend(bias.as_ref().map(|b| &b.handle));
    Call::new(plan, &operands, output.clone(), queue)
}

/// Queues `output = alpha · lhs·rhs (+ bias)` on the device thread: `lhs` contiguous
/// `[batch, m, k]`, `rhs` contiguous `[batch, k, n]` or (`true`) a transposed view of a
/// contiguous `[batch, n, k]`, `bias` `[1, n]`, `output` contiguous `[batch, m, n]`. The plan
/// (made once per key) says how much workspace its algorithm needs; the stream's workspace
/// (`nvidia::workspace`) grows to it.
fn gemm(
    lhs: &CubeTensor<CudaRuntime>,
    (rhs, transposed): (&CubeTensor<CudaRuntime>, bool),
    bias: Option<&CubeTensor<CudaRuntime>>,
    output: &CubeTensor<CudaRuntime>,
    sizes: GemmSizes,
    alpha: f32,
) -> Result<(), String> {
    let client = &lhs.client;
    // The guards hold the buffers until the call is queued.
    let operands = [&lhs.handle, &rhs.handle, &output.handle].map(Some);
    let ([lhs_ptr, rhs_ptr, output_ptr, bias_ptr], stream, _guards) = buffers(
        client,
        [
            operands[0],
            operands[1],
            operands[2],
            bias.map(|b| &b.handle),
        ],
    )?;
    let key = GemmKey {
        device: lhs.device.index,
        dtype: lhs.dtype,
        batch: sizes.batch,
        m: sizes.m,
        n: sizes.n,
        k: sizes.k,
        transposed,
        has_bias: bias.is_some(),
        alignments: [rhs_ptr, lhs_ptr, output_ptr, bias_ptr].map(alignment),
    };
    let message = |error: lt::CublasError| error.to_string();
    SESSION.run(
        key,
        || lt::create_handle().map_err(message),
        |handle| Plan::new(handle, &key, bias_ptr).map_err(message),
        |handle, plan| {
            let workspace_ptr = workspace(client, key.device, stream, plan.workspace)?;
            let beta = 0.0f32;
            // SAFETY: the descriptors are live (owned by `plan`), the addresses are buffers
            // the guards hold until this returns, with the shapes the plan was made for; the
            // work is queued on the stream that orders those buffers.
            CUBLASLT.in_library(|| unsafe {
                if key.has_bias {
                    plan.set_bias(bias_ptr).map_err(message)?;
                }
                lt::matmul(
                    handle,
                    plan.desc,
                    (&alpha as *const f32).cast(),
                    (&beta as *const f32).cast(),
                    rhs_ptr as *const c_void,
                    plan.rhs,
                    lhs_ptr as *const c_void,
                    plan.lhs,
                    output_ptr as *const c_void,
                    plan.output,
                    output_ptr as *mut c_void,
                    plan.output,
                    &plan.algo,
                    workspace_ptr as *mut c_void,
                    plan.workspace,
                    stream as sys::cudaStream_t,
                )
                .map_err(message)
            })
        },
    )
}

/// `scale · lhs·rhs` for `lhs` `[batch, m, k]` and `rhs` `[batch, k, n]` (contiguous, or a
/// transposed view of a contiguous `[batch, n, k]`, such as attention's `kᵀ`), as one strided
/// batched cuBLASLt GEMM; the third operand is not read.
#[derive(Clone, Debug)]
pub struct BatchedMatmul {
    /// The factor applied to every product (cuBLASLt's `alpha`).
    pub scale: f32,
}

impl BatchedMatmul {
    /// `[batch, m, n, k]` when the operands fit.
    fn sizes(lhs: &Shape, rhs: &Shape) -> Option<GemmSizes> {
        let (&[batch, m, k], &[rhs_batch, rhs_k, n]) = (lhs.as_slice(), rhs.as_slice()) else {
            return None;
        };
        let fits = [batch * m * k, batch * k * n, batch * m * n]
            .iter()
            .all(|d| i32::try_from(*d).is_ok());
        (batch == rhs_batch && k == rhs_k && batch * m * n * k > 0 && fits).then_some(GemmSizes {
            batch,
            m,
            n,
            k,
        })
    }

    /// The cuBLASLt call on CUDA tensors.
    fn prepare(&self, [lhs, rhs, _]: [CubeTensor<CudaRuntime>; 3]) -> Result<Call, String> {
        let lhs = contiguous(lhs);
        let (rhs, transposed) = rhs_layout(rhs);
        let sizes = Self::sizes(&lhs.shape(), &rhs.shape())
            .ok_or("operands the batched matmul does not take")?;
        let output = empty_device_contiguous_dtype(
            lhs.client.clone(),
            lhs.device.clone(),
            Shape::new([sizes.batch, sizes.m, sizes.n]),
            lhs.dtype,
        );
        Ok(gemm_call(
            lhs,
            (rhs, transposed),
            None,
            output,
            sizes,
            self.scale,
        ))
    }
}

impl FusedKernel for BatchedMatmul {
    const NAME: &'static str = "faceclip_cublaslt_batched_matmul";

    fn runs_on<R: CubeRuntime>() -> bool {
        on_cuda::<R>()
    }

    fn supports(&self, [lhs, rhs, _]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        let fits = Self::sizes(lhs, rhs).is_some();
        CUBLASLT.takes(dtypes, |d| data_type(d).is_some(), fits)
    }

    fn output_shape(&self, [lhs, rhs, _]: [&Shape; 3]) -> Shape {
        Self::sizes(lhs, rhs).map_or_else(|| lhs.clone(), |s| Shape::new([s.batch, s.m, s.n]))
    }

    fn launch<B, R>(&self, inputs: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        CUBLASLT.launch(
            inputs,
            |cuda| self.prepare(cuda),
            |[lhs, rhs, _]| B::float_mul_scalar(B::float_matmul(lhs, rhs), self.scale.into()),
        )
    }
}

/// `x`'s shape with the last axis `n` wide.
fn output_shape(x: &Shape, n: usize) -> Shape {
    let mut dims = x.as_slice().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    Shape::from(dims)
}

/// The layer with Burn's own operations, for calls cuBLASLt declined.
fn burn_linear<B: Backend>(
    [x, weight, bias]: [B::FloatTensorPrimitive; 3],
    has_bias: bool,
) -> B::FloatTensorPrimitive {
    let shape = x.shape();
    let k = shape.as_slice().last().copied().unwrap_or(1);
    let n = weight.shape().as_slice().last().copied().unwrap_or(1);
    let rows = shape.num_elements() / k.max(1);
    let x = B::float_reshape(x, Shape::new([rows, k]));
    let mut y = B::float_matmul(x, weight);
    if has_bias {
        y = B::float_add(y, bias);
    }
    B::float_reshape(y, output_shape(&shape, n))
}

/// The right operand (`[…, k, n]`) as cuBLASLt reads it: row-major, or — `true` — a
/// transposed view of a row-major `[…, n, k]` (a checkpoint weight `[out, in]`, attention's
/// `kᵀ`), read with `TRANSA`; anything else is copied.
fn rhs_layout(rhs: CubeTensor<CudaRuntime>) -> (CubeTensor<CudaRuntime>, bool) {
    if rhs.is_contiguous() {
        return (rhs, false);
    }
    let shape = rhs.shape();
    let strides = rhs.meta.strides();
    let rank = shape.num_dims();
    let (k, n) = (shape[rank - 2], shape[rank - 1]);
    let batch_packed = rank == 2 || (rank == 3 && strides[0] == n * k);
    if batch_packed && strides[rank - 2] == 1 && strides[rank - 1] == k {
        (rhs, true)
    } else {
        (contiguous(rhs), false)
    }
}

/// The largest power of two (up to 256 bytes) dividing `address`: cuBLASLt's alignment hint.
fn alignment(address: u64) -> u32 {
    1 << address.trailing_zeros().min(8)
}

fn data_type(dtype: DType) -> Option<sys::cudaDataType> {
    match dtype {
        DType::F32 => Some(sys::cudaDataType::CUDA_R_32F),
        DType::F16 => Some(sys::cudaDataType::CUDA_R_16F),
        DType::BF16 => Some(sys::cudaDataType::CUDA_R_16BF),
        _ => None,
    }
}

/// What selects a cuBLASLt plan: `batch` products `lhs[m, k]·rhs[k, n]` of contiguous
/// row-major matrices (`rhs` a transposed view of a row-major `[n, k]` when `transposed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct GemmKey {
    device: usize,
    dtype: DType,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    transposed: bool,
    has_bias: bool,
    /// Of `rhs`, `lhs`, the output and the bias.
    alignments: [u32; 4],
}

/// The cuBLASLt handle and the plans made so far.
static SESSION: Session<sys::cublasLtHandle_t, GemmKey, Plan> = Session::new(&CUBLASLT);

// SAFETY: cuBLASLt descriptors may be used from any thread, one at a time (the session's lock).
unsafe impl Send for Plan {}

/// The descriptors and algorithm of one key. cuBLASLt is column-major, so the row-major
/// `y[m, n] = x[m, k]·W[k, n]` is computed as `yᵀ[n, m] = Wᵀ[n, k]·xᵀ[k, m]`: `W` is the first
/// operand, `x` the second, and the bias (one value per row of `yᵀ`) is added per output column.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    rhs: sys::cublasLtMatrixLayout_t,
    lhs: sys::cublasLtMatrixLayout_t,
    output: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
    workspace: usize,
}

impl Plan {
    fn new(
        handle: sys::cublasLtHandle_t,
        key: &GemmKey,
        bias: u64,
    ) -> Result<Self, lt::CublasError> {
        let data = data_type(key.dtype).ok_or(lt::CublasError(
            sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED,
        ))?;
        let compute = if key.dtype == DType::F32 {
            // Burn's own f32 matmul on CUDA also runs on TF32 tensor cores.
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
        } else {
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
        };
        let (m, n, k) = (key.m as u64, key.n as u64, key.k as u64);
        // Each descriptor is owned by `plan` as soon as it exists, so an error drops it.
        let mut plan = Plan {
            desc: lt::create_matmul_desc(compute, sys::cudaDataType::CUDA_R_32F)?,
            rhs: std::ptr::null_mut(),
            lhs: std::ptr::null_mut(),
            output: std::ptr::null_mut(),
            // SAFETY: a plain-data C struct, filled by the heuristic below before any use.
            algo: unsafe { std::mem::zeroed() },
            workspace: 0,
        };
        plan.rhs = if key.transposed {
            lt::create_matrix_layout(data, k, n, key.k as i64)?
        } else {
            lt::create_matrix_layout(data, n, k, key.n as i64)?
        };
        plan.lhs = lt::create_matrix_layout(data, k, m, key.k as i64)?;
        plan.output = lt::create_matrix_layout(data, n, m, key.n as i64)?;
        if key.batch > 1 {
            let count = key.batch as i32;
            for (layout, size) in [(plan.rhs, n * k), (plan.lhs, k * m), (plan.output, n * m)] {
                // SAFETY: the layout is live; the values have the documented types (int32,
                // int64).
                unsafe {
                    set_layout(
                        layout,
                        LayoutAttr::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                        &count,
                    )?;
                    set_layout(
                        layout,
                        LayoutAttr::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        &(size as i64),
                    )?;
                }
            }
        }
        let epilogue = if key.has_bias {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
        } else {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT
        };
        // SAFETY: each attribute gets a value of the type cuBLASLt documents for it.
        unsafe {
            if key.transposed {
                let transpose: i32 = 1; // CUBLAS_OP_T
                set_desc(plan.desc, DescAttr::CUBLASLT_MATMUL_DESC_TRANSA, &transpose)?;
            }
            set_desc(
                plan.desc,
                DescAttr::CUBLASLT_MATMUL_DESC_EPILOGUE,
                &epilogue,
            )?;
            if key.has_bias {
                plan.set_bias(bias)?;
            }
        }
        let preference = Preference(lt::create_matmul_pref()?);
        let [rhs_align, lhs_align, output_align, _] = key.alignments;
        // SAFETY: as above; the heuristic reads live descriptors.
        let heuristic = unsafe {
            preference.set(
                PrefAttr::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &(WORKSPACE_BYTES as u64),
            )?;
            preference.set(
                PrefAttr::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                &rhs_align,
            )?;
            preference.set(
                PrefAttr::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                &lhs_align,
            )?;
            preference.set(
                PrefAttr::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                &output_align,
            )?;
            preference.set(
                PrefAttr::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                &output_align,
            )?;
            lt::get_matmul_algo_heuristic(
                handle,
                plan.desc,
                plan.rhs,
                plan.lhs,
                plan.output,
                plan.output,
                preference.0,
            )?
        };
        plan.algo = heuristic.algo;
        plan.workspace = heuristic.workspaceSize;
        Ok(plan)
    }

    /// Points the epilogue at this call's bias.
    ///
    /// # Safety
    /// `bias` is the device address of `n` values of the plan's element type.
    unsafe fn set_bias(&self, bias: u64) -> Result<(), lt::CublasError> {
        set_desc(
            self.desc,
            DescAttr::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
            &bias,
        )
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each non-null descriptor was created for this plan and is dropped once.
        unsafe {
            for layout in [self.rhs, self.lhs, self.output] {
                if !layout.is_null() {
                    let _ = lt::destroy_matrix_layout(layout);
                }
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

type DescAttr = sys::cublasLtMatmulDescAttributes_t;
type LayoutAttr = sys::cublasLtMatrixLayoutAttribute_t;
type PrefAttr = sys::cublasLtMatmulPreferenceAttributes_t;

/// Sets a matmul-descriptor attribute to `value`.
///
/// # Safety
/// `T` is the attribute's documented type and `desc` is live.
unsafe fn set_desc<T>(
    desc: sys::cublasLtMatmulDesc_t,
    attribute: DescAttr,
    value: &T,
) -> Result<(), lt::CublasError> {
    lt::set_matmul_desc_attribute(
        desc,
        attribute,
        (value as *const T).cast(),
        std::mem::size_of::<T>(),
    )
}

/// Sets a matrix-layout attribute to `value`.
///
/// # Safety
/// `T` is the attribute's documented type and `layout` is live.
unsafe fn set_layout<T>(
    layout: sys::cublasLtMatrixLayout_t,
    attribute: LayoutAttr,
    value: &T,
) -> Result<(), lt::CublasError> {
    lt::set_matrix_layout_attribute(
        layout,
        attribute,
        (value as *const T).cast(),
        std::mem::size_of::<T>(),
    )
}

/// A heuristic-preference descriptor, destroyed on drop.
struct Preference(sys::cublasLtMatmulPreference_t);

impl Preference {
    /// Sets an attribute to `value`.
    ///
    /// # Safety
    /// `T` is the attribute's documented type.
    unsafe fn set<T>(&self, attribute: PrefAttr, value: &T) -> Result<(), lt::CublasError> {
        lt::set_matmul_pref_attribute(
            self.0,
            attribute,
            (value as *const T).cast(),
            std::mem::size_of::<T>(),
        )
    }
}

impl Drop for Preference {
    fn drop(&mut self) {
        // SAFETY: created by `create_matmul_pref` and dropped once.
        let _ = unsafe { lt::destroy_matmul_pref(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(
        layer: &Linear,
        x: &[usize],
        weight: &[usize],
        bias: &[usize],
    ) -> Option<(usize, usize, usize)> {
        let shape = |d: &[usize]| Shape::from(d.to_vec());
        layer.dims(&shape(x), &shape(weight), &shape(bias))
    }

    #[test]
    fn takes_rows_times_a_burn_layout_weight() {
        let with_bias = Linear { has_bias: true };
        assert_eq!(
            dims(&with_bias, &[2, 3888, 640], &[640, 5120], &[1, 5120]),
            Some((7776, 640, 5120))
        );
        assert_eq!(
            dims(&with_bias, &[77, 768], &[768, 768], &[1, 768]),
            Some((77, 768, 768))
        );
        assert_eq!(
            dims(&with_bias, &[2, 3888, 640], &[320, 640], &[1, 640]),
            None
        );
        assert_eq!(dims(&with_bias, &[2, 10, 64], &[64, 32], &[32]), None);
        assert_eq!(dims(&with_bias, &[0, 64], &[64, 32], &[1, 32]), None);
        // Without a bias the third operand is not read.
        let plain = Linear { has_bias: false };
        assert_eq!(dims(&plain, &[4, 64], &[64, 32], &[7]), Some((4, 64, 32)));
        assert_eq!(
            output_shape(&Shape::new([2, 3, 64]), 32),
            Shape::new([2, 3, 32])
        );
    }

    #[test]
    fn batched_products_need_matching_batches_and_inner_sizes() {
        let sizes = |lhs: &[usize], rhs: &[usize]| {
            BatchedMatmul::sizes(&Shape::from(lhs.to_vec()), &Shape::from(rhs.to_vec()))
                .map(|s| [s.batch, s.m, s.n, s.k])
        };
        // SDXL's attention scores: 20 (batch × heads) products of 3888 × 64 by 64 × 3888.
        assert_eq!(
            sizes(&[20, 3888, 64], &[20, 64, 3888]),
            Some([20, 3888, 3888, 64])
        );
        assert_eq!(
            sizes(&[20, 3888, 3888], &[20, 3888, 64]),
            Some([20, 3888, 64, 3888])
        );
        assert_eq!(sizes(&[2, 4, 8], &[3, 8, 5]), None);
        assert_eq!(sizes(&[2, 4, 8], &[2, 7, 5]), None);
        assert_eq!(sizes(&[2, 0, 8], &[2, 8, 5]), None);
        assert_eq!(sizes(&[4, 8], &[8, 5]), None);
        // Past `int` elements in one operand.
        assert_eq!(sizes(&[40, 8192, 8192], &[40, 8192, 64]), None);
    }

    /// Where cuBLASLt is not installed (CI), the error says which files were looked for and
    /// where to put them, and the path cannot be turned on.
    #[test]
    fn a_missing_library_is_named() {
        if let Err(error) = CUBLASLT.available() {
            let message = error.to_string();
            assert!(message.contains("libcublasLt.so"), "{message}");
            assert!(message.contains("LD_LIBRARY_PATH"), "{message}");
            assert!(CUBLASLT.set_enabled(true).is_err());
            assert!(!CUBLASLT.usable());
        }
    }

    #[test]
    fn alignment_is_the_largest_power_of_two_up_to_256() {
        assert_eq!(alignment(0x7f00_0000_0000), 256);
        assert_eq!(alignment(0x7f00_0000_0010), 16);
        assert_eq!(alignment(0x7f00_0000_0006), 2);
    }
}
