//! Sinusoidal embeddings of timesteps (and SDXL's size/crop numbers) and the two-layer MLP that
//! turns them into the UNet's conditioning vector.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::nn::{load_linear, Linear};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

/// diffusers' `get_timestep_embedding` for each of `values`, computed on the host in `f32` as
/// PyTorch does: `dim` numbers per value, `[sin | cos]` (or `[cos | sin]` when `flip`), with
/// frequencies `exp(-ln(10000) · i / (dim/2 − shift))`. Returns `values.len() × dim` numbers.
pub fn sinusoidal_embedding(values: &[f32], dim: usize, flip: bool, shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let denominator = (half as f64 - shift) as f32;
    let frequencies: Vec<f32> = (0..half)
        .map(|i| ((-(10000f64.ln()) as f32) * i as f32 / denominator).exp())
        .collect();
    let mut out = Vec::with_capacity(values.len() * dim);
    for &v in values {
        let angles = frequencies.iter().map(|f| v * f);
        let sin: Vec<f32> = angles.clone().map(f32::sin).collect();
        let cos: Vec<f32> = angles.map(f32::cos).collect();
        let (first, second) = if flip { (cos, sin) } else { (sin, cos) };
        out.extend(first);
        out.extend(second);
        // An odd `dim` is zero-padded, as diffusers does.
        out.extend(std::iter::repeat_n(0.0, dim - 2 * half));
    }
    out
}

/// Places host embeddings `[rows, dim]` on the device.
pub fn embedding_tensor<B: Backend>(
    values: Vec<f32>,
    dim: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let rows = values.len() / dim.max(1);
    Tensor::from_data(TensorData::new(values, [rows, dim]), device)
}

/// diffusers' `TimestepEmbedding`: `linear_2(silu(linear_1(x)))`.
#[derive(Module, Debug)]
pub struct TimestepMlp<B: Backend> {
    linear_1: Linear<B>,
    linear_2: Linear<B>,
}

impl<B: Backend> TimestepMlp<B> {
    /// Loads `linear_1 (d_in → d_out)` and `linear_2 (d_out → d_out)` from `vb`.
    pub fn load(vb: &Weights<B>, d_in: usize, d_out: usize) -> Result<Self, LoadError> {
        Ok(Self {
            linear_1: load_linear(&vb.pp("linear_1"), d_in, d_out, true)?,
            linear_2: load_linear(&vb.pp("linear_2"), d_out, d_out, true)?,
        })
    }

    /// Applies the MLP to `[batch, d_in]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}
