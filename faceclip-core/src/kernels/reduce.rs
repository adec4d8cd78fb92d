//! The cube-wide reduction and the statistics the norm kernels share.

use cubecl::prelude::*;

/// `(Σ (x − shift), Σ (x − shift)²)` in `f32` over `input[start..end]`, strided over the cube's
/// `block` units (a power of two, the cube's size) and added up across them through shared
/// memory; every unit gets the totals. Call it from every unit of the cube (it synchronises).
#[cube]
pub(crate) fn shifted_sums<F: Float>(
    input: &Tensor<F>,
    start: usize,
    end: usize,
    shift: f32,
    #[comptime] block: usize,
) -> (f32, f32) {
    let unit = UNIT_POS_X as usize;
    let mut sum = f32::new(0.0);
    let mut squares = f32::new(0.0);
    let mut index = start + unit;
    while index < end {
        let centred = f32::cast_from(input[index]) - shift;
        sum += centred;
        squares += centred * centred;
        index += block;
    }

    let mut shared_sum = SharedMemory::<f32>::new(block);
    let mut shared_squares = SharedMemory::<f32>::new(block);
    shared_sum[unit] = sum;
    shared_squares[unit] = squares;
    sync_cube();
    // `block` is a compile-time value; the halving stride must be a run-time one.
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if unit < stride {
            shared_sum[unit] += shared_sum[unit + stride];
            shared_squares[unit] += shared_squares[unit + stride];
        }
        sync_cube();
        stride /= 2;
    }
    (shared_sum[0], shared_squares[0])
}

/// `(μ, 1/√(σ² + ε))` of `count` values from their sums shifted by `shift` (as
/// [`shifted_sums`] returns them); the biased variance is clamped at 0 against rounding.
#[cube]
pub(crate) fn mean_and_inverse_std(
    sum: f32,
    squares: f32,
    count: f32,
    shift: f32,
    epsilon: f32,
) -> (f32, f32) {
    let centred_mean = sum / count;
    let mut variance = squares / count - centred_mean * centred_mean;
    if variance < f32::new(0.0) {
        variance = f32::new(0.0);
    }
    (
        shift + centred_mean,
        f32::new(1.0) / f32::sqrt(variance + epsilon),
    )
}
