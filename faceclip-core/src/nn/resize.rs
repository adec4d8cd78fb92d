//! Bilinear resizing with PyTorch's `align_corners=False`, no-antialias rule.
//!
//! Written as two small interpolation matrices (`out = Rᵧ · img · Rₓᵀ`), so it is exact and runs
//! on every backend without a dedicated kernel.

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// The two source taps `(lo, hi, frac)` of every output index along one axis under PyTorch's
/// half-pixel bilinear rule: source coordinate `(i + 0.5) · in/out − 0.5`, clamped at 0,
/// neighbours clamped to the edge; the output is `(1 − frac) · src[lo] + frac · src[hi]`.
/// Shared by [`resize_bilinear`] and host-side resizers (`input` and `output` must be non-zero).
pub fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    // f32 arithmetic, as PyTorch's CPU kernel computes source indices for float images.
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let lo = (src.floor() as usize).min(input - 1);
            let hi = (lo + 1).min(input - 1);
            (lo, hi, src - lo as f32)
        })
        .collect()
}

/// Interpolation matrix `[out, in]` of [`bilinear_taps`].
fn interpolation_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    for (i, (lo, hi, frac)) in bilinear_taps(input, output).into_iter().enumerate() {
        m[i * input + lo] += 1.0 - frac;
        m[i * input + hi] += frac;
    }
    m
}

/// Resizes `[batch, channels, h, w]` to `[batch, channels, out_h, out_w]` exactly as
/// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)`.
/// All sizes must be non-zero (callers validate user input first).
pub fn resize_bilinear<B: Backend>(
    images: Tensor<B, 4>,
    out_h: usize,
    out_w: usize,
) -> Tensor<B, 4> {
    let [_, _, h, w] = images.dims();
    if (h, w) == (out_h, out_w) {
        return images;
    }
    let device = images.device();
    let ry = Tensor::<B, 2>::from_data(
        TensorData::new(interpolation_matrix(h, out_h), [out_h, h]),
        &device,
    );
    let rx = Tensor::<B, 2>::from_data(
        TensorData::new(interpolation_matrix(w, out_w), [out_w, w]),
        &device,
    );
    let rows = ry.unsqueeze::<4>().matmul(images);
    rows.matmul(rx.transpose().unsqueeze::<4>())
}

#[cfg(test)]
mod tests {
    use super::interpolation_matrix;

    #[test]
    fn quarter_downscale_averages_the_middle_pair() {
        // 448 -> 112: output i samples 4i + 1.5, the mean of pixels 4i+1 and 4i+2.
        let m = interpolation_matrix(8, 2);
        assert_eq!(&m[..8], &[0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&m[8..], &[0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn upscale_clamps_at_the_edges() {
        let m = interpolation_matrix(2, 4);
        assert_eq!(m, vec![1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
    }
}
