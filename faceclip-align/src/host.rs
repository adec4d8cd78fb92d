//! Host-side weights read from non-PyTorch formats (ONNX initializers, TFJS weight files), with
//! the same typed errors as the checkpoint loader, and the layer builders both models share.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::LoadError;

/// A float32 tensor held in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Moves the values to `device` as a `D`-dimensional tensor (the shape must have `D` dims).
    pub fn to_device<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// Reorders a TensorFlow kernel `[kh, kw, in, out]` to PyTorch/Burn `[out, in, kh, kw]`;
    /// with `depthwise`, `[kh, kw, channels, 1]` becomes `[channels, 1, kh, kw]`.
    pub fn tf_kernel_to_oihw(&self, depthwise: bool) -> HostTensor {
        let [kh, kw, a, b] = [self.shape[0], self.shape[1], self.shape[2], self.shape[3]];
        let (out, inp) = if depthwise { (a * b, 1) } else { (b, a) };
        let mut data = vec![0f32; self.data.len()];
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..a {
                    for o in 0..b {
                        let src = ((y * kw + x) * a + i) * b + o;
                        let (oc, ic) = if depthwise { (i * b + o, 0) } else { (o, i) };
                        data[((oc * inp + ic) * kh + y) * kw + x] = self.data[src];
                    }
                }
            }
        }
        HostTensor {
            shape: vec![out, inp, kh, kw],
            data,
        }
    }
}

/// Named host tensors from one file, fetched with shape checks.
#[derive(Debug)]
pub struct HostWeights {
    file: PathBuf,
    tensors: BTreeMap<String, HostTensor>,
}

impl HostWeights {
    /// Wraps tensors read from `file`.
    pub fn new(file: PathBuf, tensors: BTreeMap<String, HostTensor>) -> Self {
        Self { file, tensors }
    }

    /// The file the tensors came from.
    pub fn file(&self) -> &PathBuf {
        &self.file
    }

    /// The tensor `key`, which must have shape `expected`.
    pub fn get(&self, key: &str, expected: &[usize]) -> Result<&HostTensor, LoadError> {
        let tensor = self.tensors.get(key).ok_or_else(|| LoadError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
            expected: expected.to_vec(),
        })?;
        if tensor.shape != expected {
            return Err(LoadError::ShapeMismatch {
                file: self.file.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                found: tensor.shape.clone(),
            });
        }
        Ok(tensor)
    }

    /// A scalar stored as shape `[]` or `[1]`.
    pub fn scalar(&self, key: &str) -> Result<f32, LoadError> {
        let tensor = self.tensors.get(key).ok_or_else(|| LoadError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
            expected: vec![1],
        })?;
        match tensor.data.as_slice() {
            [value] => Ok(*value),
            _ => Err(LoadError::ShapeMismatch {
                file: self.file.clone(),
                key: key.to_string(),
                expected: vec![1],
                found: tensor.shape.clone(),
            }),
        }
    }
}

/// Geometry of one 2-D convolution with square kernel and symmetric padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Kernel side.
    pub kernel: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Channel groups (`channels[0]` for a depthwise convolution).
    pub groups: usize,
}

impl ConvSpec {
    /// A 1×1, stride-1 convolution without padding.
    pub fn pointwise(c_in: usize, c_out: usize) -> Self {
        Self {
            channels: [c_in, c_out],
            kernel: 1,
            stride: 1,
            padding: 0,
            groups: 1,
        }
    }

    /// A 3×3 convolution with padding 1 (`groups = c_in` for a depthwise one).
    pub fn k3(c_in: usize, c_out: usize, stride: usize, groups: usize) -> Self {
        Self {
            channels: [c_in, c_out],
            kernel: 3,
            stride,
            padding: 1,
            groups,
        }
    }

    /// The weight shape `[out, in / groups, k, k]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let [c_in, c_out] = self.channels;
        [c_out, c_in / self.groups, self.kernel, self.kernel]
    }

    /// A Burn convolution with the given weight `[out, in / groups, k, k]` and bias `[out]`.
    pub fn build<B: Backend>(&self, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Conv2d<B> {
        Conv2d {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            stride: [self.stride, self.stride],
            kernel_size: [self.kernel, self.kernel],
            dilation: [1, 1],
            groups: self.groups,
            padding: PaddingConfig2d::Explicit(
                self.padding,
                self.padding,
                self.padding,
                self.padding,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_kernels_reorder_to_oihw() {
        // [kh=1, kw=2, in=2, out=3], value = 100*x + 10*i + o.
        let mut data = Vec::new();
        for x in 0..2 {
            for i in 0..2 {
                for o in 0..3 {
                    data.push((100 * x + 10 * i + o) as f32);
                }
            }
        }
        let t = HostTensor {
            shape: vec![1, 2, 2, 3],
            data,
        }
        .tf_kernel_to_oihw(false);
        assert_eq!(t.shape, vec![3, 2, 1, 2]);
        // [o=2, i=1, y=0, x=1] -> 100 + 10 + 2.
        assert_eq!(t.data[(2 * 2 + 1) * 2 + 1], 112.0);

        let dw = HostTensor {
            shape: vec![1, 2, 3, 1],
            data: vec![0., 1., 2., 10., 11., 12.],
        }
        .tf_kernel_to_oihw(true);
        assert_eq!(dw.shape, vec![3, 1, 1, 2]);
        assert_eq!(dw.data, vec![0., 10., 1., 11., 2., 12.]);
    }
}
