//! Linear layers: `y = x·W + b` with Burn's layout (`W` `[d_in, d_out]`), on cuBLASLt where
//! [`crate::backend::fused_linear`] takes them.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

use crate::backend::fused_linear;
use crate::error::LoadError;
use crate::weights::Weights;

/// A linear layer with the record layout of `burn::nn::Linear` (`weight` `[d_in, d_out]`,
/// optional `bias` `[d_out]`), whose forward pass takes cuBLASLt on Burn's CUDA backend.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// The weight, `[d_in, d_out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// The bias, `[d_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Linear<B> {
    /// `[…, d_in] -> […, d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear(
            x,
            &self.weight.val(),
            self.bias.as_ref().map(|b| b.val()).as_ref(),
        )
    }
}

/// `x·W (+ b)` over the last axis of `x` (`W` `[k, n]`, `b` `[n]`): cuBLASLt where
/// [`fused_linear`] takes the operands, Burn's matmul elsewhere.
pub fn linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
) -> Tensor<B, D> {
    match fused_linear(&x, weight, bias) {
        Some(y) => y,
        None => burn::tensor::module::linear(x, weight.clone(), bias.cloned()),
    }
}

/// Linear layers that read the same input, run as one: their weights side by side in one
/// `[d_in, Σ d_out]` matrix, so one GEMM (one cuBLASLt call on CUDA) does the work of several,
/// and each layer's output is a view of the joint product. Attention's q, k and v projections
/// are such layers, which PyTorch checkpoints often store apart.
#[derive(Module, Debug)]
pub struct PackedLinear<B: Backend> {
    /// The layers as one: weight `[d_in, Σ d_out]`, bias `[Σ d_out]`.
    pub joint: Linear<B>,
    /// Each layer's output width, in order.
    pub widths: Vec<usize>,
}

impl<B: Backend> PackedLinear<B> {
    /// Loads the PyTorch `nn.Linear(d_in, d_outs[i])` layers `names[i]` under `vb` (keys
    /// `{name}.weight [d_out, d_in]`, and `{name}.bias [d_out]` when `bias`) and packs them.
    pub fn load<const N: usize>(
        vb: &Weights<B>,
        names: [&str; N],
        d_in: usize,
        d_outs: [usize; N],
        bias: bool,
    ) -> Result<Self, LoadError> {
        let keys = |leaf: &str| names.map(|name| format!("{name}.{leaf}"));
        let weights = keys("weight");
        let weight =
            vb.linear_weights_concat(&weights.each_ref().map(String::as_str), d_in, &d_outs)?;
        let bias = if bias {
            let biases = keys("bias");
            Some(Param::from_tensor(vb.tensors_concat(
                &biases.each_ref().map(String::as_str),
                &d_outs,
            )?))
        } else {
            None
        };
        Ok(Self {
            joint: Linear {
                weight: Param::from_tensor(weight),
                bias,
            },
            widths: d_outs.to_vec(),
        })
    }

    /// Each layer's output `[…, d_outs[i]]`, in the order loaded: `N` is the number of layers
    /// loaded.
    pub fn forward<const D: usize, const N: usize>(&self, x: Tensor<B, D>) -> [Tensor<B, D>; N] {
        debug_assert_eq!(N, self.widths.len(), "PackedLinear holds {:?}", self.widths);
        let joint = self.joint.forward(x);
        let mut start = 0;
        std::array::from_fn(|i| {
            let width = self.widths[i];
            start += width;
            joint.clone().narrow(D - 1, start - width, width)
        })
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::*;
    use crate::backend::NdArray;
    use burn::tensor::{Distribution, TensorData};

    /// The layer is `x·W + b` (checked element by element on the host).
    #[test]
    fn forward_is_x_times_w_plus_b() {
        let device = Default::default();
        let x = Tensor::<NdArray, 3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<NdArray, 2>::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<NdArray, 1>::random([5], Distribution::Normal(0.0, 1.0), &device);
        let layer = Linear {
            weight: Param::from_tensor(weight.clone()),
            bias: Some(Param::from_tensor(bias.clone())),
        };
        let y = layer.forward(x.clone());
        assert_eq!(y.dims(), [2, 3, 5]);
        let (x, w, b, y): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) = (
            x.into_data().to_vec().unwrap(),
            weight.into_data().to_vec().unwrap(),
            bias.into_data().to_vec().unwrap(),
            y.into_data().to_vec().unwrap(),
        );
        for row in 0..6 {
            for j in 0..5 {
                let expected = b[j] + (0..4).map(|i| x[row * 4 + i] * w[i * 5 + j]).sum::<f32>();
                assert!(
                    (y[row * 5 + j] - expected).abs() < 1e-5,
                    "row {row}, column {j}"
                );
            }
        }
        let plain = Linear {
            weight: Param::from_tensor(Tensor::<NdArray, 2>::from_data(
                TensorData::new(vec![1.0f32, 2.0], [1, 2]),
                &device,
            )),
            bias: None,
        };
        let y: Vec<f32> = plain
            .forward(Tensor::<NdArray, 2>::from_data(
                TensorData::new(vec![3.0f32], [1, 1]),
                &device,
            ))
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(y, [3.0, 6.0]);
    }

    /// Packed layers give each layer's own output, whatever their widths, with and without
    /// biases: the same keys load the same values, and each part of the product is one
    /// layer's.
    #[test]
    fn packed_layers_give_each_layers_output() {
        use crate::nn::load_linear;
        use crate::parity::{relative_l2, to_vec};
        let device = Default::default();
        let vb = Weights::<NdArray>::seeded(&device, 7).pp("attn");
        let x = Tensor::<NdArray, 3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let layers = [("to_q", 2), ("to_k", 3), ("proj_mlp", 5)];
        for bias in [true, false] {
            let packed = PackedLinear::load(
                &vb,
                layers.map(|(name, _)| name),
                4,
                layers.map(|l| l.1),
                bias,
            )
            .unwrap();
            assert_eq!(packed.joint.weight.dims(), [4, 10]);
            let outputs: [Tensor<NdArray, 3>; 3] = packed.forward(x.clone());
            for (output, (name, width)) in outputs.into_iter().zip(layers) {
                let alone = load_linear(&vb.pp(name), 4, width, bias)
                    .unwrap()
                    .forward(x.clone());
                assert_eq!(output.dims(), [2, 3, width], "{name}");
                let err = relative_l2(&to_vec(output), &to_vec(alone));
                assert!(err < 1e-6, "{name}, bias {bias}: relative L2 {err:e}");
            }
        }
    }
}
