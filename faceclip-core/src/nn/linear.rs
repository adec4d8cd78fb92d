//! Linear layers: `y = x·W + b` with Burn's layout (`W` `[d_in, d_out]`), on cuBLASLt where
//! [`crate::backend::fused_linear`] takes them.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

use crate::backend::fused_linear;

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
}
