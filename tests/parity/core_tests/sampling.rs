//! `backend::fused_sampling_matrix` (the deformable layers' sampling matrix as one CubeCL
//! kernel) against the matrix built on the host from its definition: bilinear weights of the
//! four corners around each sampling point, zero outside the grid. The fuser's tests check the
//! layers that use it against GroundingDINO (`fusion_tests::fuser`).

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::{fused_sampling_matrix, NdArray};
use faceclip_core::parity::to_vec;

/// A non-square grid, so a swapped axis shows.
const GRID: [usize; 2] = [3, 5];
const BATCH: usize = 2;
const HEADS: usize = 3;
const POINTS: usize = 4;

/// Offsets `[BATCH, cells, HEADS, POINTS, 2]` up to ±4 cells (many points land off the grid),
/// one in three a whole or half number of cells (corners on cell boundaries), and point
/// weights `[BATCH, cells, HEADS, POINTS]`; deterministic.
fn operands() -> (Vec<f32>, Vec<f32>) {
    let cells = GRID[0] * GRID[1];
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32
    };
    let offsets = (0..BATCH * cells * HEADS * POINTS * 2)
        .map(|i| {
            let value = next() * 8.0 - 4.0;
            if i % 3 == 0 {
                (value * 2.0).round() / 2.0
            } else {
                value
            }
        })
        .collect();
    let alpha = (0..BATCH * cells * HEADS * POINTS)
        .map(|_| next())
        .collect();
    (offsets, alpha)
}

/// The matrix `[BATCH, HEADS, cells, cells]` from its definition.
fn expected(offsets: &[f32], alpha: &[f32]) -> Vec<f32> {
    let [height, width] = GRID;
    let cells = height * width;
    let mut matrix = vec![0.0f32; BATCH * HEADS * cells * cells];
    for b in 0..BATCH {
        for q in 0..cells {
            for h in 0..HEADS {
                for p in 0..POINTS {
                    let at = ((b * cells + q) * HEADS + h) * POINTS + p;
                    let x = (q % width) as f32 + offsets[2 * at];
                    let y = (q / width) as f32 + offsets[2 * at + 1];
                    let (x0, y0) = (x.floor(), y.floor());
                    for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
                        let (cx, cy) = (x0 + dx, y0 + dy);
                        let inside =
                            (0.0..width as f32).contains(&cx) && (0.0..height as f32).contains(&cy);
                        if !inside {
                            continue;
                        }
                        let wx = if dx == 0.0 { 1.0 - (x - x0) } else { x - x0 };
                        let wy = if dy == 0.0 { 1.0 - (y - y0) } else { y - y0 };
                        let cell = cy as usize * width + cx as usize;
                        matrix[((b * HEADS + h) * cells + q) * cells + cell] += alpha[at] * wx * wy;
                    }
                }
            }
        }
    }
    matrix
}

/// `fused_sampling_matrix` of [`operands`] on `B`, or `None` where `B` has no kernel for it.
fn fused<B: Backend>(
    device: &B::Device,
    (offsets, alpha): (Vec<f32>, Vec<f32>),
) -> Option<Vec<f32>> {
    let cells = GRID[0] * GRID[1];
    let offsets = Tensor::<B, 5>::from_data(
        TensorData::new(offsets, [BATCH, cells, HEADS, POINTS, 2]),
        device,
    );
    let alpha = Tensor::<B, 4>::from_data(
        TensorData::new(alpha, [BATCH, cells, HEADS, POINTS]),
        device,
    );
    let matrix = fused_sampling_matrix(&alpha, &offsets, GRID)?;
    assert_eq!(matrix.dims(), [BATCH, HEADS, cells, cells]);
    Some(to_vec(matrix))
}

fn check<B: Backend>(device: &B::Device) {
    let (offsets, alpha) = operands();
    let expected = expected(&offsets, &alpha);
    let actual =
        fused::<B>(device, (offsets, alpha)).expect("a sampling-matrix kernel on this backend");
    let worst = actual
        .iter()
        .zip(&expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    println!(
        "sampling matrix on {}: max abs error {worst:.2e}",
        B::name(device)
    );
    assert!(worst < 1e-5, "max abs error {worst:.2e}");
    // The case covers what it means to: points off the grid and weights on it.
    assert!(expected.iter().filter(|w| **w > 0.0).count() > expected.len() / 20);
}

#[test]
fn sampling_matrix_has_no_kernel_on_ndarray() {
    assert!(fused::<NdArray>(&Default::default(), operands()).is_none());
}

#[test]
fn sampling_matrix_refuses_a_grid_its_operands_do_not_fit() {
    let device = Default::default();
    let alpha = Tensor::<NdArray, 4>::zeros([1, 14, 1, 1], &device);
    let offsets = Tensor::<NdArray, 5>::zeros([1, 14, 1, 1, 2], &device);
    assert!(fused_sampling_matrix(&alpha, &offsets, GRID).is_none());
}

#[cfg(feature = "wgpu")]
#[test]
fn sampling_matrix_matches_its_definition_wgpu() {
    check::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn sampling_matrix_matches_its_definition_cuda() {
    check::<faceclip_core::backend::Cuda>(&Default::default());
}
