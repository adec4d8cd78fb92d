//! Fused `GroupNorm` (optionally followed by SiLU) as three CubeCL kernels.
//!
//! The portable path (`burn::nn::GroupNorm` then `silu`) runs a mean reduction, a subtraction, a
//! variance reduction and the affine/activation element-wise pass, materialising the centred
//! input in between. Here the statistics come from one read of the input and the output from
//! one more read and one write:
//! 1. `group_partial_sums`: each group is cut into chunks, one cube per (group, chunk), each
//!    summing `x − shift` and `(x − shift)²` in `f32`, where `shift` is the group's first element
//!    (shifted sums keep the variance accurate when the mean is large against the spread);
//! 2. `group_statistics`: one unit per group adds its chunks into the mean and `1/σ`;
//! 3. `group_norm_apply`: one unit per element, `γ·(x − μ)/σ + β`, then SiLU when asked.
//!
//! Inputs and outputs keep the tensor's element type (`f32`, `bf16`, ...); all arithmetic is in
//! `f32`.

use burn::tensor::{backend::Backend, DType, Shape, TensorMetadata};

use super::reduce::{mean_and_inverse_std, shifted_sums};
use super::FusedKernel;
use burn_cubecl::{
    kernel::into_contiguous, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// Units per cube of the statistics kernel (a power of two: its reduction halves it).
const STATS_CUBE_DIM: u32 = 256;
/// Elements each statistics cube aims to cover; a group gets `len / CHUNK_TARGET` chunks.
const CHUNK_TARGET: usize = 8192;
/// Most chunks per group, bounding the serial loop of [`group_statistics`].
const MAX_CHUNKS: usize = 256;
/// Most groups (`batch × groups`) per launch: they index the statistics grid's second axis.
const MAX_GROUPS: usize = 65_535;

/// Sums of `x − shift` and `(x − shift)²` over one chunk of one group, written to
/// `partial[(group · chunks + chunk) · 2 ..][..2]`. Grid: (chunks, groups); `block` units a cube.
#[cube(launch)]
fn group_partial_sums<F: Float>(
    input: &Tensor<F>,
    partial: &mut Tensor<f32>,
    group_len: usize,
    chunk_len: usize,
    chunks: usize,
    #[comptime] block: usize,
    #[define(F)] _dtype: StorageType,
) {
    let group = CUBE_POS_Y as usize;
    let chunk = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let base = group * group_len;
    let shift = f32::cast_from(input[base]);

    let start = base + chunk * chunk_len;
    let mut end = start + chunk_len;
    if end > base + group_len {
        end = base + group_len;
    }

    let (sum, squares) = shifted_sums(input, start, end, shift, block);
    if unit == 0 {
        let offset = (group * chunks + chunk) * 2;
        partial[offset] = sum;
        partial[offset + 1] = squares;
    }
}

/// Mean and `1/√(var + eps)` of each group from its chunks' shifted sums, written to
/// `stats[group · 2 ..][..2]`. One unit per group.
#[cube(launch)]
fn group_statistics<F: Float>(
    input: &Tensor<F>,
    partial: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    groups: usize,
    group_len: usize,
    chunks: usize,
    epsilon: f32,
    #[define(F)] _dtype: StorageType,
) {
    let group = ABSOLUTE_POS;
    if group >= groups {
        terminate!();
    }
    let shift = f32::cast_from(input[group * group_len]);

    let mut sum = f32::new(0.0);
    let mut squares = f32::new(0.0);
    for chunk in 0..chunks {
        let offset = (group * chunks + chunk) * 2;
        sum += partial[offset];
        squares += partial[offset + 1];
    }

    let count = f32::cast_from(group_len as u32);
    let (mean, inverse_std) = mean_and_inverse_std(sum, squares, count, shift, epsilon);
    stats[group * 2] = mean;
    stats[group * 2 + 1] = inverse_std;
}

/// `γ[c]·(x − μ)/σ + β[c]`, then `y·σ(y)` when `silu`. One unit per element of the contiguous
/// `[batch, channels, spatial…]` input.
#[cube(launch)]
fn group_norm_apply<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    stats: &Tensor<f32>,
    output: &mut Tensor<F>,
    len: usize,
    group_len: usize,
    spatial: usize,
    channels: usize,
    #[comptime] silu: bool,
    #[define(F)] _dtype: StorageType,
) {
    let index = ABSOLUTE_POS;
    if index >= len {
        terminate!();
    }
    let group = index / group_len;
    let channel = (index / spatial) % channels;

    let normalised = (f32::cast_from(input[index]) - stats[group * 2]) * stats[group * 2 + 1];
    let mut value = normalised * f32::cast_from(gamma[channel]) + f32::cast_from(beta[channel]);
    if silu {
        value /= f32::new(1.0) + f32::exp(-value);
    }
    output[index] = F::cast_from(value);
}

/// `GroupNorm(groups, epsilon)` with affine `γ`, `β` (then SiLU when `silu`) as a
/// [`FusedKernel`] on `[x, γ, β]`.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// Number of groups the channels split into.
    pub groups: usize,
    /// Added to the variance.
    pub epsilon: f64,
    /// Whether SiLU follows the norm.
    pub silu: bool,
}

impl FusedKernel for GroupNorm {
    const NAME: &'static str = "faceclip_group_norm";

    /// The kernels read `x` as `[batch, channels, spatial…]` with `channels` divisible by
    /// `groups`, and `γ`, `β` as `[channels]` of `x`'s element type.
    fn supports(&self, [x, gamma, beta]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        let dims = x.as_slice();
        if dims.len() < 3 || self.groups == 0 || dtypes.iter().any(|d| *d != dtypes[0]) {
            return false;
        }
        let (batch, channels) = (dims[0], dims[1]);
        let len = x.num_elements();
        channels % self.groups == 0
            && gamma.as_slice() == [channels]
            && beta.as_slice() == [channels]
            && len > 0
            && batch * self.groups <= MAX_GROUPS
            && u32::try_from(len).is_ok()
            && matches!(dtypes[0], DType::F32 | DType::F16 | DType::BF16)
    }

    fn launch<B, R>(&self, [x, gamma, beta]: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        group_norm(x, gamma, beta, self.groups, self.epsilon, self.silu)
    }
}

/// The three launches; [`GroupNorm::supports`] holds for the operands.
fn group_norm<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    groups: usize,
    epsilon: f64,
    silu: bool,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let gamma = into_contiguous(gamma);
    let beta = into_contiguous(beta);
    let shape = x.shape();
    let dims = shape.as_slice();
    let (batch, channels) = (dims[0], dims[1]);
    let len = shape.num_elements();
    let spatial = len / (batch * channels);
    let group_count = batch * groups;
    let group_len = len / group_count;
    let chunks = group_len.div_ceil(CHUNK_TARGET).clamp(1, MAX_CHUNKS);
    let chunk_len = group_len.div_ceil(chunks);

    let client = x.client.clone();
    let device = x.device.clone();
    let dtype = x.dtype;
    let f32_buffer = |len: usize| {
        empty_device_contiguous_dtype(
            client.clone(),
            device.clone(),
            Shape::new([len]),
            DType::F32,
        )
    };
    let partial = f32_buffer(group_count * chunks * 2);
    let stats = f32_buffer(group_count * 2);
    let output =
        empty_device_contiguous_dtype(client.clone(), device.clone(), shape.clone(), dtype);

    group_partial_sums::launch::<R>(
        &client,
        CubeCount::Static(chunks as u32, group_count as u32, 1),
        CubeDim::new_1d(STATS_CUBE_DIM),
        x.clone().into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        group_len,
        chunk_len,
        chunks,
        STATS_CUBE_DIM as usize,
        dtype.into(),
    );

    let stats_dim = CubeDim::new(&client, group_count);
    group_statistics::launch::<R>(
        &client,
        calculate_cube_count_elemwise(&client, group_count, stats_dim),
        stats_dim,
        x.clone().into_tensor_arg(),
        partial.into_tensor_arg(),
        stats.clone().into_tensor_arg(),
        group_count,
        group_len,
        chunks,
        epsilon as f32,
        dtype.into(),
    );

    let apply_dim = CubeDim::new(&client, len);
    group_norm_apply::launch::<R>(
        &client,
        calculate_cube_count_elemwise(&client, len, apply_dim),
        apply_dim,
        x.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        stats.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        len,
        group_len,
        spatial,
        channels,
        silu,
        dtype.into(),
    );

    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(
        x: [usize; 4],
        x_dtype: DType,
        affine: usize,
        affine_dtype: DType,
        groups: usize,
    ) -> bool {
        let kernel = GroupNorm {
            groups,
            epsilon: 1e-5,
            silu: true,
        };
        let affine = Shape::new([affine]);
        kernel.supports(
            [&Shape::new(x), &affine, &affine],
            [x_dtype, affine_dtype, affine_dtype],
        )
    }

    #[test]
    fn supports_only_what_the_kernels_read() {
        assert!(takes([2, 320, 144, 108], DType::F32, 320, DType::F32, 32));
        assert!(takes([1, 64, 8, 8], DType::BF16, 64, DType::BF16, 32));
        // Channels that do not split into the groups, a γ of the wrong length or type.
        assert!(!takes([2, 30, 4, 4], DType::F32, 30, DType::F32, 32));
        assert!(!takes([2, 64, 4, 4], DType::F32, 32, DType::F32, 32));
        assert!(!takes([2, 64, 4, 4], DType::BF16, 64, DType::F32, 32));
        // No groups, an empty input, integer data, more groups than a launch grid holds.
        assert!(!takes([2, 64, 4, 4], DType::F32, 64, DType::F32, 0));
        assert!(!takes([2, 64, 0, 4], DType::F32, 64, DType::F32, 32));
        assert!(!takes([2, 64, 4, 4], DType::I32, 64, DType::I32, 32));
        assert!(!takes([4096, 32, 1, 1], DType::F32, 32, DType::F32, 32));
        // Fewer than three dimensions.
        let (matrix, affine) = (Shape::new([4, 64]), Shape::new([64]));
        let kernel = GroupNorm {
            groups: 32,
            epsilon: 1e-5,
            silu: false,
        };
        assert!(!kernel.supports([&matrix, &affine, &affine], [DType::F32; 3]));
    }
}
