//! 2-D convolutions through NVIDIA's cuDNN on Burn's CUDA buffers and stream (loading, device
//! thread, stream and fallback: `kernels::nvidia`): `cudnnConvolutionForward` on NCHW tensors
//! with PyTorch's `[out, in / groups, kh, kw]` weights, then the bias with `cudnnAddTensor`.
//! cuDNN's heuristic (`cudnnGetConvolutionForwardAlgorithm_v7`) picks the algorithm and its
//! math mode (tensor cores for bf16/f16, TF32 allowed for f32) once per shape and element type;
//! the plan is kept for the process. With [`CudaConvolution::CudnnGraph`] the convolution goes
//! through cuDNN's graph API instead (the private `convolution` module). [`attention`] is
//! cuDNN's fused attention, through its graph API.

use std::ffi::c_void;

use burn::tensor::ops::ConvOptions;
use burn::tensor::{backend::Backend, DType, Shape, TensorMetadata};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::cuda::CudaRuntime;
use cudarc::cudnn::{result as dnn, sys};

use super::nvidia::{buffers, contiguous, on_cuda, workspace, Call, LibraryPath, Session};
use super::FusedKernel;
use crate::backend::{cuda_convolution, CudaConvolution};

pub mod attention;
mod convolution;
mod graph;

/// cuDNN's loading, switch and counters.
pub(crate) static CUDNN: LibraryPath = LibraryPath::new("cuDNN", "cudnn", probe);

fn probe() -> bool {
    // SAFETY: only opens the library.
    unsafe { sys::is_culib_present() }
}

/// The most workspace an algorithm (legacy API) or engine configuration (graph API) may ask
/// for: the stream's workspace grows to the largest and is kept.
const MAX_WORKSPACE_BYTES: usize = 256 << 20;

/// A convolution of `x` `[n, c, h, w]` with a weight `[o, c / groups, kh, kw]` and, when
/// `has_bias`, a bias `[1, o, 1, 1]`; symmetric zero padding.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding on each side, along height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Whether the third operand is a bias to add.
    pub has_bias: bool,
}

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConvDims {
    x: [usize; 4],
    weight: [usize; 4],
    output: [usize; 4],
}

impl Conv2d {
    /// The sizes, when the operands fit this convolution and cuDNN's `int` sizes.
    fn dims(&self, x: &Shape, weight: &Shape, bias: &Shape) -> Option<ConvDims> {
        let &[n, c, h, w] = x.as_slice() else {
            return None;
        };
        let &[o, c_group, kh, kw] = weight.as_slice() else {
            return None;
        };
        let groups_fit = self.groups > 0 && c_group * self.groups == c && o % self.groups == 0;
        let bias_fits = !self.has_bias || bias.as_slice() == [1, o, 1, 1];
        let extent = |size: usize, axis: usize| {
            let span = self.dilation[axis] * (if axis == 0 { kh } else { kw }).checked_sub(1)? + 1;
            let padded = size + 2 * self.padding[axis];
            (self.stride[axis] > 0 && padded >= span)
                .then(|| (padded - span) / self.stride[axis] + 1)
        };
        let (oh, ow) = (extent(h, 0)?, extent(w, 1)?);
        let dims = ConvDims {
            x: [n, c, h, w],
            weight: [o, c_group, kh, kw],
            output: [n, o, oh, ow],
        };
        let sizes_fit = [dims.x, dims.weight, dims.output]
            .iter()
            .all(|d| d.iter().all(|s| *s > 0) && d.iter().product::<usize>() <= i32::MAX as usize);
        (groups_fit && bias_fits && sizes_fit).then_some(dims)
    }

    /// The cuDNN call on CUDA tensors, through the interface [`cuda_convolution`] chooses.
    fn prepare(&self, [x, weight, bias]: [CubeTensor<CudaRuntime>; 3]) -> Result<Call, String> {
        let x = contiguous(x);
        let weight = contiguous(weight);
        let bias = self.has_bias.then(|| contiguous(bias));
        let dims = self
            .dims(
                &x.shape(),
                &weight.shape(),
                &bias.as_ref().map_or(Shape::new([0]), |b| b.shape()),
            )
            .ok_or("operands the convolution does not take")?;
        let output = empty_device_contiguous_dtype(
            x.client.clone(),
            x.device.clone(),
            Shape::from(dims.output.to_vec()),
            x.dtype,
        );
        let key = PlanKey {
            device: x.device.index,
            dtype: x.dtype,
            dims,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        let api = cuda_convolution();
        let queue = {
            let (x, weight, bias, output) =
                (x.clone(), weight.clone(), bias.clone(), output.clone());
            move || match api {
                CudaConvolution::CudnnGraph => convolution::run(&key, [&x, &weight, &output]),
                CudaConvolution::CudnnLegacy => legacy(&key, [&x, &weight, &output], bias.as_ref()),
            }
        };
        let mut operands = vec![&x.handle, &weight.handle, &output.handle];
        let graph = api == CudaConvolution::CudnnGraph;
        match bias {
            // The graph's convolution has no bias: Burn's broadcasting add (`[1, o, 1, 1]`)
            // adds it in place.
            Some(bias) if graph => Ok(Call::new((api, key), &operands, output.clone(), queue)
                .then(move |output| burn_cubecl::ops::numeric::add(output, bias))),
            bias => {
                operands.extend(bias.as_ref().map(|b| &b.handle));
                Ok(Call::new((api, key), &operands, output.clone(), queue))
            }
        }
    }
}

/// Queues `output = x ⊛ weight (+ bias)` for `key`'s sizes (all contiguous) through cuDNN's
/// legacy API, the plan made once per key; runs on the device thread.
fn legacy(
    key: &PlanKey,
    [x, weight, output]: [&CubeTensor<CudaRuntime>; 3],
    bias: Option<&CubeTensor<CudaRuntime>>,
) -> Result<(), String> {
    let message = |error: dnn::CudnnError| error.to_string();
    SESSION.run(
        *key,
        || dnn::create_handle().map_err(message),
        |handle| Plan::new(handle, key).map_err(message),
        |handle, plan| {
            // The guards hold the buffers until the calls are queued.
            let client = &x.client;
            let bias = bias.map(|b| &b.handle);
            let handles = [&x.handle, &weight.handle, &output.handle].map(Some);
            let ([x_ptr, weight_ptr, output_ptr, bias_ptr], stream, _guards) =
                buffers(client, [handles[0], handles[1], handles[2], bias])?;
            let workspace_ptr = workspace(client, key.device, stream, plan.workspace)?;
            let (one, zero) = (1.0f32, 0.0f32);
            // SAFETY: the descriptors are live (owned by `plan`) and describe these
            // buffers, which the guards keep allocated until the work is queued on the
            // stream that orders them; the scaling factors are `float`, as cuDNN wants for
            // every data type but double.
            CUDNN.in_library(|| unsafe {
                dnn::set_stream(handle, stream as sys::cudaStream_t).map_err(message)?;
                dnn::convolution_forward(
                    handle,
                    (&one as *const f32).cast(),
                    plan.x,
                    x_ptr as *const c_void,
                    plan.weight,
                    weight_ptr as *const c_void,
                    plan.conv,
                    plan.algo,
                    workspace_ptr as *mut c_void,
                    plan.workspace,
                    (&zero as *const f32).cast(),
                    plan.output,
                    output_ptr as *mut c_void,
                )
                .map_err(message)?;
                if bias.is_some() {
                    sys::cudnnAddTensor(
                        handle,
                        (&one as *const f32).cast(),
                        plan.bias,
                        bias_ptr as *const c_void,
                        (&one as *const f32).cast(),
                        plan.output,
                        output_ptr as *mut c_void,
                    )
                    .result()
                    .map_err(message)?;
                }
                Ok(())
            })
        },
    )
}

impl FusedKernel for Conv2d {
    const NAME: &'static str = "faceclip_cudnn_conv2d";

    fn runs_on<R: CubeRuntime>() -> bool {
        on_cuda::<R>()
    }

    fn supports(&self, [x, weight, bias]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        let fits = self.dims(x, weight, bias).is_some();
        CUDNN.takes(dtypes, |d| data_type(d).is_some(), fits)
    }

    fn output_shape(&self, [x, weight, bias]: [&Shape; 3]) -> Shape {
        self.dims(x, weight, bias)
            .map_or_else(|| x.clone(), |dims| Shape::from(dims.output.to_vec()))
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
                    .map_err(|error| format!("convolution: {error}"))
            },
            |[x, weight, bias]| {
                let bias = self.has_bias.then(|| {
                    let o = bias.shape().num_elements();
                    B::float_reshape(bias, Shape::new([o]))
                });
                let options =
                    ConvOptions::new(self.stride, self.padding, self.dilation, self.groups);
                B::conv2d(x, weight, bias, options)
            },
        )
    }
}

fn data_type(dtype: DType) -> Option<sys::cudnnDataType_t> {
    match dtype {
        DType::F32 => Some(sys::cudnnDataType_t::CUDNN_DATA_FLOAT),
        DType::F16 => Some(sys::cudnnDataType_t::CUDNN_DATA_HALF),
        DType::BF16 => Some(sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16),
        _ => None,
    }
}

/// What selects a cuDNN plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    device: usize,
    dtype: DType,
    dims: ConvDims,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

/// The cuDNN handle and the plans made so far.
static SESSION: Session<sys::cudnnHandle_t, PlanKey, Plan> = Session::new(&CUDNN);

// SAFETY: cuDNN descriptors may be used from any thread, one at a time (the session's lock).
unsafe impl Send for Plan {}

/// The descriptors, algorithm and workspace size of one key.
struct Plan {
    x: sys::cudnnTensorDescriptor_t,
    weight: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
    output: sys::cudnnTensorDescriptor_t,
    bias: sys::cudnnTensorDescriptor_t,
    algo: sys::cudnnConvolutionFwdAlgo_t,
    workspace: usize,
}

impl Plan {
    fn new(handle: sys::cudnnHandle_t, key: &PlanKey) -> Result<Self, dnn::CudnnError> {
        let data = data_type(key.dtype).ok_or(dnn::CudnnError(
            sys::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED,
        ))?;
        let int = |d: [usize; 4]| d.map(|s| s as i32);
        let ConvDims { x, weight, output } = key.dims;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        // Each descriptor is owned by `plan` as soon as it exists, so an error drops it.
        let mut plan = Plan {
            x: dnn::create_tensor_descriptor()?,
            weight: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
            output: std::ptr::null_mut(),
            bias: std::ptr::null_mut(),
            algo: sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
            workspace: 0,
        };
        plan.weight = dnn::create_filter_descriptor()?;
        plan.conv = dnn::create_convolution_descriptor()?;
        plan.output = dnn::create_tensor_descriptor()?;
        plan.bias = dnn::create_tensor_descriptor()?;
        let mut perf: [sys::cudnnConvolutionFwdAlgoPerf_t; 8] =
            // SAFETY: plain-data C structs, written by the heuristic before they are read.
            unsafe { std::mem::zeroed() };
        let mut found = 0;
        // SAFETY: every descriptor is live and set before the heuristic reads it; `perf` holds
        // as many results as requested.
        unsafe {
            dnn::set_tensor4d_descriptor(plan.x, nchw, data, int(x))?;
            dnn::set_filter4d_descriptor(plan.weight, data, nchw, int(weight))?;
            dnn::set_tensor4d_descriptor(plan.output, nchw, data, int(output))?;
            dnn::set_tensor4d_descriptor(plan.bias, nchw, data, [1, output[1] as i32, 1, 1])?;
            dnn::set_convolution2d_descriptor(
                plan.conv,
                key.padding[0] as i32,
                key.padding[1] as i32,
                key.stride[0] as i32,
                key.stride[1] as i32,
                key.dilation[0] as i32,
                key.dilation[1] as i32,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )?;
            dnn::set_convolution_group_count(plan.conv, key.groups as i32)?;
            dnn::set_convolution_math_type(plan.conv, sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH)?;
            dnn::get_convolution_forward_algorithm(
                handle,
                plan.x,
                plan.weight,
                plan.conv,
                plan.output,
                perf.len() as i32,
                &mut found,
                perf.as_mut_ptr(),
            )?;
            let best = perf
                .iter()
                .take(found.max(0) as usize)
                .find(|p| {
                    p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                        && p.memory <= MAX_WORKSPACE_BYTES
                })
                .ok_or(dnn::CudnnError(
                    sys::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED,
                ))?;
            // The algorithm runs in the math mode it was ranked with.
            dnn::set_convolution_math_type(plan.conv, best.mathType)?;
            plan.algo = best.algo;
            plan.workspace = best.memory;
        }
        Ok(plan)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each non-null descriptor was created for this plan and is dropped once.
        unsafe {
            for tensor in [self.x, self.output, self.bias] {
                if !tensor.is_null() {
                    let _ = dnn::destroy_tensor_descriptor(tensor);
                }
            }
            if !self.weight.is_null() {
                let _ = dnn::destroy_filter_descriptor(self.weight);
            }
            if !self.conv.is_null() {
                let _ = dnn::destroy_convolution_descriptor(self.conv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(stride: usize, padding: usize, groups: usize, has_bias: bool) -> Conv2d {
        Conv2d {
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
            groups,
            has_bias,
        }
    }

    fn output(
        layer: &Conv2d,
        x: [usize; 4],
        weight: [usize; 4],
        bias: &[usize],
    ) -> Option<[usize; 4]> {
        let shape = |d: &[usize]| Shape::from(d.to_vec());
        layer
            .dims(&shape(&x), &shape(&weight), &shape(bias))
            .map(|dims| dims.output)
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        // SDXL's 3×3 convolutions keep the size; its downsamplers halve it (rounding up).
        let same = conv(1, 1, 1, true);
        assert_eq!(
            output(&same, [2, 640, 72, 54], [640, 640, 3, 3], &[1, 640, 1, 1]),
            Some([2, 640, 72, 54])
        );
        let down = conv(2, 1, 1, true);
        assert_eq!(
            output(&down, [2, 320, 143, 107], [320, 320, 3, 3], &[1, 320, 1, 1]),
            Some([2, 320, 72, 54])
        );
        // Grouped, no bias (the third operand is then not read).
        let grouped = conv(1, 0, 4, false);
        assert_eq!(
            output(&grouped, [1, 8, 5, 5], [12, 2, 1, 1], &[7]),
            Some([1, 12, 5, 5])
        );
        // Mismatched channels or bias, kernel larger than the padded input.
        assert_eq!(
            output(&same, [2, 64, 8, 8], [32, 32, 3, 3], &[1, 32, 1, 1]),
            None
        );
        assert_eq!(output(&same, [2, 32, 8, 8], [32, 32, 3, 3], &[32]), None);
        assert_eq!(
            output(&conv(1, 0, 1, false), [1, 3, 2, 2], [4, 3, 3, 3], &[0]),
            None
        );
        assert_eq!(
            output(&conv(0, 0, 1, false), [1, 3, 4, 4], [4, 3, 3, 3], &[0]),
            None
        );
    }

    /// Where cuDNN is not installed (CI), the error says which files were looked for.
    #[test]
    fn a_missing_library_is_named() {
        if let Err(error) = CUDNN.available() {
            let message = error.to_string();
            assert!(message.contains("libcudnn.so"), "{message}");
            assert!(CUDNN.set_enabled(true).is_err());
            assert!(!CUDNN.usable());
        }
    }
}
