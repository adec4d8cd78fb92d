//! Helpers to compare tensors with reference outputs (used by the parity tests of every crate).

use burn::tensor::{backend::Backend, DType, Element, Tensor, TensorData};

use crate::backend::is_cuda;
use crate::error::LoadError;
use crate::weights::Checkpoint;

/// Tensor `key` of a reference file as a `D`-dimensional float tensor on `device`; a stored
/// rank other than `D` is a [`LoadError::ShapeMismatch`].
pub fn reference_tensor<B: Backend, const D: usize>(
    reference: &Checkpoint,
    key: &str,
    device: &B::Device,
) -> Result<Tensor<B, D>, LoadError> {
    let (values, shape) = reference.read_f32(key)?;
    let dims: [usize; D] = shape
        .clone()
        .try_into()
        .map_err(|_| LoadError::ShapeMismatch {
            file: reference.path().to_path_buf(),
            key: key.to_string(),
            expected: vec![0; D],
            found: shape,
        })?;
    Ok(Tensor::from_data(TensorData::new(values, dims), device))
}

/// Peak signal-to-noise ratio in dB of two images with values in `[0, 1]` (lengths must match;
/// identical images give 200 dB).
pub fn psnr(actual: &[f32], expected: &[f32]) -> f64 {
    if actual.len() != expected.len() || actual.is_empty() {
        return f64::NEG_INFINITY;
    }
    let mse = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / actual.len() as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

/// `‖a − b‖₂ / ‖b‖₂` (absolute error when `b` is all zeros); `inf` if the lengths differ.
pub fn relative_l2(actual: &[f32], expected: &[f32]) -> f64 {
    if actual.len() != expected.len() {
        return f64::INFINITY;
    }
    let (mut diff, mut norm) = (0f64, 0f64);
    for (a, b) in actual.iter().zip(expected) {
        let d = *a as f64 - *b as f64;
        diff += d * d;
        norm += (*b as f64) * (*b as f64);
    }
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

/// The values of a float tensor on the host, as `f32`.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default()
}

/// Relative L2 error of `actual` against `expected` values of shape `shape`; `inf` on a shape mismatch.
pub fn tensor_error<B: Backend, const D: usize>(
    actual: Tensor<B, D>,
    expected: &[f32],
    shape: &[usize],
) -> f64 {
    if actual.dims().as_slice() != shape {
        return f64::INFINITY;
    }
    relative_l2(&to_vec(actual), expected)
}

/// The relative L2 error a parity check accepts on backends that do not compute in full f32:
/// half-precision tensors (`bf16`, `f16`), and Burn's CUDA backend, whose `f32` matmuls run on
/// tensor cores in TF32 (a 10-bit mantissa). The bound is the one the GPU issue sets for bf16.
pub const REDUCED_PRECISION_TOLERANCE: f64 = 1e-2;

/// Whether backend `B` on `device` computes in reduced precision (see
/// [`REDUCED_PRECISION_TOLERANCE`]): a float element other than `f32`, or the CUDA backend.
pub fn reduced_precision<B: Backend>(device: &B::Device) -> bool {
    <B::FloatElem as Element>::dtype() != DType::F32 || is_cuda::<B>(device)
}

/// The tolerance a parity check applies on `B`: `f32_tolerance` on full-f32 backends, at least
/// [`REDUCED_PRECISION_TOLERANCE`] where [`reduced_precision`] holds.
pub fn tolerance_on<B: Backend>(device: &B::Device, f32_tolerance: f64) -> f64 {
    if reduced_precision::<B>(device) {
        f32_tolerance.max(REDUCED_PRECISION_TOLERANCE)
    } else {
        f32_tolerance
    }
}

/// Compares `actual` with tensor `key` of a reference file, prints the relative L2 error and
/// panics (naming `label`, the key and both numbers) when it exceeds `tolerance` — raised to
/// [`REDUCED_PRECISION_TOLERANCE`] on reduced-precision backends ([`tolerance_on`]).
/// Meant for parity tests.
pub fn assert_close<B: Backend, const D: usize>(
    label: &str,
    actual: Tensor<B, D>,
    reference: &Checkpoint,
    key: &str,
    tolerance: f64,
) {
    let (expected, shape) = match reference.read_f32(key) {
        Ok(found) => found,
        Err(e) => panic!("{label}: cannot read reference `{key}`: {e}"),
    };
    let tolerance = tolerance_on::<B>(&actual.device(), tolerance);
    let err = tensor_error(actual, &expected, &shape);
    println!("{label} {key}: relative L2 error {err:.3e}");
    assert!(
        err <= tolerance,
        "{label} {key}: relative L2 error {err:.3e} > {tolerance:e}"
    );
}

#[cfg(test)]
mod tests {
    use super::{psnr, relative_l2};

    #[test]
    fn relative_error_basics() {
        assert_eq!(relative_l2(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_l2(&[3.0, 4.0], &[0.0, 0.0]) - 5.0).abs() < 1e-12);
        assert!((relative_l2(&[1.1], &[1.0]) - 0.1).abs() < 1e-6);
        assert!(relative_l2(&[1.0], &[1.0, 2.0]).is_infinite());
    }

    /// Full-f32 backends keep the caller's tolerance; the reduced-precision bound only raises it.
    #[cfg(feature = "ndarray")]
    #[test]
    fn tolerance_is_unchanged_on_full_f32_backends() {
        use super::{reduced_precision, tolerance_on};
        use crate::backend::NdArray;
        let device = Default::default();
        assert!(!reduced_precision::<NdArray>(&device));
        assert_eq!(tolerance_on::<NdArray>(&device, 1e-4), 1e-4);
        assert_eq!(tolerance_on::<NdArray>(&device, 0.5), 0.5);
    }

    #[test]
    fn psnr_basics() {
        assert_eq!(psnr(&[0.5, 0.5], &[0.5, 0.5]), 200.0);
        assert!((psnr(&[0.1], &[0.0]) - 20.0).abs() < 1e-5);
        assert!(psnr(&[0.1], &[0.0, 1.0]).is_infinite());
    }
}
