//! LayerNorm and RMSNorm over the last axis as one CubeCL kernel: one cube per row reduces the
//! row's statistics in `f32` (shifted sums for LayerNorm, as in [`super::group_norm`]) and then
//! writes the normalised, scaled and shifted row. Burn 0.21 composes these norms from two
//! reductions and several element-wise passes.
//!
//! The affine parameters may be per sample: `γ`, `β` of shape `[samples, width]` for `x` of
//! shape `[samples, …, width]`, which is FLUX's modulated LayerNorm
//! (`norm(x)·(1 + scale) + shift` with `[batch, width]` modulation).

use burn::tensor::{backend::Backend, DType, Shape, TensorMetadata};
use burn_cubecl::{
    kernel::into_contiguous, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;

use super::reduce::{mean_and_inverse_std, shifted_sums};
use super::FusedKernel;

/// Most units per cube; rows narrower than this get the next power of two (at least 32).
const MAX_CUBE_DIM: usize = 256;
/// Most cubes along one grid axis.
const MAX_GRID_AXIS: usize = 65_535;

/// Normalises row `CUBE_POS` of `input` (`rows × width`, contiguous): LayerNorm when `centre`,
/// else RMSNorm; then `·γ[s] (+ β[s])` with `s = row / rows_per_affine`.
#[cube(launch)]
fn row_norm_kernel<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    output: &mut Tensor<F>,
    rows: usize,
    width: usize,
    rows_per_affine: usize,
    epsilon: f32,
    #[comptime] block: usize,
    #[comptime] centre: bool,
    #[comptime] has_beta: bool,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS;
    // A whole cube shares its row, so it leaves as one before any barrier.
    if row >= rows {
        terminate!();
    }
    let unit = UNIT_POS_X as usize;
    let base = row * width;
    let affine = (row / rows_per_affine) * width;
    let mut shift = f32::new(0.0);
    if centre {
        shift = f32::cast_from(input[base]);
    }

    let (sum, squares) = shifted_sums(input, base, base + width, shift, block);

    let count = f32::cast_from(width as u32);
    let (mean, scale) = if centre {
        mean_and_inverse_std(sum, squares, count, shift, epsilon)
    } else {
        (
            f32::new(0.0),
            f32::new(1.0) / f32::sqrt(squares / count + epsilon),
        )
    };

    let mut index = unit;
    while index < width {
        let mut value = (f32::cast_from(input[base + index]) - mean)
            * scale
            * f32::cast_from(gamma[affine + index]);
        if has_beta {
            value += f32::cast_from(beta[affine + index]);
        }
        output[base + index] = F::cast_from(value);
        index += block;
    }
}

/// A norm over the last axis as a [`FusedKernel`] on `[x, γ, β]`: LayerNorm when `centre`
/// (`(x − μ)/√(σ² + ε)`), RMSNorm otherwise (`x/√(mean(x²) + ε)`), then `·γ`, then `+β` when
/// `has_beta` (the `β` operand is ignored otherwise). `γ`, `β` are `[width]`, or
/// `[samples, width]` for `x` of shape `[samples, …, width]` (rank ≥ 3), one row each sample.
#[derive(Clone, Debug)]
pub struct RowNorm {
    /// Added to the variance (or mean square).
    pub epsilon: f64,
    /// Whether the mean is subtracted (LayerNorm) or not (RMSNorm).
    pub centre: bool,
    /// Whether `β` is added.
    pub has_beta: bool,
}

impl RowNorm {
    /// `(rows, width, samples)` of operands the kernel takes, else `None`.
    fn layout(&self, x: &Shape, gamma: &Shape, beta: &Shape) -> Option<(usize, usize, usize)> {
        let width = *x.as_slice().last()?;
        let len = x.num_elements();
        let rows = len.checked_div(width)?;
        let samples = match gamma.as_slice() {
            [w] if *w == width => 1,
            [s, w] if *w == width && x.as_slice().first() == Some(s) && x.num_dims() > 2 => *s,
            _ => return None,
        };
        let beta_fits = !self.has_beta || beta.as_slice() == gamma.as_slice();
        (beta_fits && u32::try_from(len).is_ok()).then_some((rows, width, samples))
    }
}

impl FusedKernel for RowNorm {
    const NAME: &'static str = "faceclip_row_norm";

    fn supports(&self, [x, gamma, beta]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        dtypes.iter().all(|d| *d == dtypes[0])
            && matches!(dtypes[0], DType::F32 | DType::F16 | DType::BF16)
            && self.layout(x, gamma, beta).is_some()
    }

    fn launch<B, R>(&self, [x, gamma, beta]: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        let x = into_contiguous(x);
        let gamma = into_contiguous(gamma);
        let beta = into_contiguous(beta);
        let shape = x.shape();
        let (rows, width, samples) = self
            .layout(&shape, &gamma.shape(), &beta.shape())
            .expect("launched only on operands `supports` accepted");
        let block = width.next_power_of_two().clamp(32, MAX_CUBE_DIM);
        let grid_x = rows.min(MAX_GRID_AXIS);
        let grid_y = rows.div_ceil(grid_x);

        let client = x.client.clone();
        let dtype = x.dtype;
        let output = empty_device_contiguous_dtype(client.clone(), x.device.clone(), shape, dtype);
        row_norm_kernel::launch::<R>(
            &client,
            CubeCount::Static(grid_x as u32, grid_y as u32, 1),
            CubeDim::new_1d(block as u32),
            x.into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            output.clone().into_tensor_arg(),
            rows,
            width,
            rows / samples,
            self.epsilon as f32,
            block,
            self.centre,
            self.has_beta,
            dtype.into(),
        );
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(kernel: &RowNorm, x: &[usize], gamma: &[usize], beta: &[usize]) -> bool {
        let shape = |dims: &[usize]| Shape::from(dims.to_vec());
        kernel.supports([&shape(x), &shape(gamma), &shape(beta)], [DType::F32; 3])
    }

    #[test]
    fn supports_per_row_and_per_sample_affine_only() {
        let layer = RowNorm {
            epsilon: 1e-5,
            centre: true,
            has_beta: true,
        };
        assert!(takes(&layer, &[2, 3888, 640], &[640], &[640]));
        assert!(takes(&layer, &[2, 4096, 3072], &[2, 3072], &[2, 3072]));
        assert!(!takes(&layer, &[2, 10, 640], &[320], &[320]));
        assert!(!takes(&layer, &[2, 10, 640], &[640], &[2, 640]));
        // Per-sample parameters must match the first axis of a rank-3 (or more) input.
        assert!(!takes(&layer, &[3, 10, 64], &[2, 64], &[2, 64]));
        assert!(!takes(&layer, &[4, 64], &[2, 64], &[2, 64]));
        assert!(!takes(&layer, &[2, 10, 0], &[0], &[0]));
        let rms = RowNorm {
            epsilon: 1e-6,
            centre: false,
            has_beta: false,
        };
        // Without β the third operand is not read.
        assert!(takes(&rms, &[1, 24, 4608, 128], &[128], &[7]));
        let ints = [DType::I32; 3];
        let s = Shape::new([4, 8]);
        let g = Shape::new([8]);
        assert!(!rms.supports([&s, &g, &g], ints));
    }
}
