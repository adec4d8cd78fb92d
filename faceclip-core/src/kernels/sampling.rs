//! The dense bilinear sampling matrix of single-level deformable attention (FaceCLIP's fuser) as
//! one CubeCL kernel. Built from Burn ops it takes about a hundred small launches per layer
//! (corner coordinates, bounds, one-hot cells, a reduction per corner); here one unit computes
//! one entry of the matrix.

use burn::tensor::{backend::Backend, DType, Shape, TensorMetadata};
use burn_cubecl::{
    kernel::into_contiguous, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use super::FusedKernel;

/// `matrix[b, h, q, cell]`: over the points `p` of query `q` and head `h`, the sum of
/// `α[b, q, h, p]` times the bilinear weight of `cell` for the point at query `q`'s grid position
/// plus `offsets[b, q, h, p]` (`(x, y)`, in cells); corners outside the grid add nothing (zero
/// padding). All operands contiguous; arithmetic in `f32`.
#[cube(launch)]
fn sampling_matrix_kernel<F: Float>(
    offsets: &Tensor<F>,
    alpha: &Tensor<F>,
    matrix: &mut Tensor<F>,
    len: usize,
    heads: usize,
    points: usize,
    grid_width: usize,
    cells: usize,
    #[define(F)] _dtype: StorageType,
) {
    let index = ABSOLUTE_POS;
    if index >= len {
        terminate!();
    }
    let cell = index % cells;
    let query = (index / cells) % cells;
    let head = (index / (cells * cells)) % heads;
    let batch = index / (cells * cells * heads);
    let cell_x = f32::cast_from((cell % grid_width) as u32);
    let cell_y = f32::cast_from((cell / grid_width) as u32);
    let query_x = f32::cast_from((query % grid_width) as u32);
    let query_y = f32::cast_from((query / grid_width) as u32);

    let first_point = ((batch * cells + query) * heads + head) * points;
    let mut sum = f32::new(0.0);
    for point in 0..points {
        let at = first_point + point;
        let x = query_x + f32::cast_from(offsets[at * 2]);
        let y = query_y + f32::cast_from(offsets[at * 2 + 1]);
        let (x0, y0) = (f32::floor(x), f32::floor(y));
        // The cell's bilinear weight along each axis: 1 − frac at the lower corner, frac at the
        // upper one, 0 elsewhere.
        let mut weight_x = f32::new(0.0);
        if cell_x == x0 {
            weight_x = f32::new(1.0) - (x - x0);
        } else if cell_x == x0 + f32::new(1.0) {
            weight_x = x - x0;
        }
        let mut weight_y = f32::new(0.0);
        if cell_y == y0 {
            weight_y = f32::new(1.0) - (y - y0);
        } else if cell_y == y0 + f32::new(1.0) {
            weight_y = y - y0;
        }
        sum += f32::cast_from(alpha[at]) * weight_x * weight_y;
    }
    matrix[index] = F::cast_from(sum);
}

/// The sampling matrix `[batch, heads, cells, cells]` of a `grid` (`[height, width]`, `cells =
/// height·width` queries, one per cell) as a [`FusedKernel`] on `[α, offsets, offsets]`: `α`
/// `[batch, cells, heads, points]` (the points' attention weights), `offsets` `[batch, cells,
/// heads, points, 2]` (`(x, y)` in cells; the third operand is not read).
#[derive(Clone, Debug)]
pub struct SamplingMatrix {
    /// The grid's `[height, width]`.
    pub grid: [usize; 2],
}

impl SamplingMatrix {
    /// `[batch, heads, points]` of operands that fit the grid.
    fn sizes(&self, alpha: &Shape, offsets: &Shape) -> Option<[usize; 3]> {
        let &[batch, cells, heads, points] = alpha.as_slice() else {
            return None;
        };
        let fits = offsets.as_slice() == [batch, cells, heads, points, 2]
            && cells == self.grid[0] * self.grid[1]
            && batch * heads * points > 0
            && u32::try_from(batch * heads * cells * cells).is_ok();
        fits.then_some([batch, heads, points])
    }
}

impl FusedKernel for SamplingMatrix {
    const NAME: &'static str = "faceclip_sampling_matrix";

    fn supports(&self, [alpha, offsets, _]: [&Shape; 3], dtypes: [DType; 3]) -> bool {
        dtypes[0] == dtypes[1]
            && matches!(dtypes[0], DType::F32 | DType::F16 | DType::BF16)
            && self.sizes(alpha, offsets).is_some()
    }

    fn output_shape(&self, [alpha, _, _]: [&Shape; 3]) -> Shape {
        let dims = alpha.as_slice();
        let cells = self.grid[0] * self.grid[1];
        Shape::new([dims[0], dims.get(2).copied().unwrap_or(0), cells, cells])
    }

    fn launch<B, R>(&self, [alpha, offsets, _]: [CubeTensor<R>; 3]) -> CubeTensor<R>
    where
        B: Backend<FloatTensorPrimitive = CubeTensor<R>>,
        R: CubeRuntime,
    {
        let alpha = into_contiguous(alpha);
        let offsets = into_contiguous(offsets);
        let [batch, heads, points] = self
            .sizes(&alpha.shape(), &offsets.shape())
            .expect("launched only on operands `supports` accepted");
        let cells = self.grid[0] * self.grid[1];
        let shape = Shape::new([batch, heads, cells, cells]);
        let len = shape.num_elements();
        let client = alpha.client.clone();
        let dtype = alpha.dtype;
        let matrix =
            empty_device_contiguous_dtype(client.clone(), alpha.device.clone(), shape, dtype);
        let cube_dim = CubeDim::new(&client, len);
        sampling_matrix_kernel::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, len, cube_dim),
            cube_dim,
            offsets.into_tensor_arg(),
            alpha.into_tensor_arg(),
            matrix.clone().into_tensor_arg(),
            len,
            heads,
            points,
            self.grid[1],
            cells,
            dtype.into(),
        );
        matrix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supports_operands_that_fit_the_grid() {
        let kernel = SamplingMatrix { grid: [12, 12] };
        let shape = |dims: &[usize]| Shape::from(dims.to_vec());
        let takes = |alpha: &[usize], offsets: &[usize], dtype| {
            kernel.supports(
                [&shape(alpha), &shape(offsets), &shape(offsets)],
                [dtype; 3],
            )
        };
        assert!(takes(&[1, 144, 8, 4], &[1, 144, 8, 4, 2], DType::F32));
        assert!(takes(&[2, 144, 8, 4], &[2, 144, 8, 4, 2], DType::BF16));
        assert!(!takes(&[1, 143, 8, 4], &[1, 143, 8, 4, 2], DType::F32));
        assert!(!takes(&[1, 144, 8, 4], &[1, 144, 8, 3, 2], DType::F32));
        assert!(!takes(&[1, 144, 8, 4], &[1, 144, 8, 4, 2], DType::I32));
        assert_eq!(
            kernel.output_shape([&shape(&[2, 144, 8, 4]), &shape(&[]), &shape(&[])]),
            shape(&[2, 8, 144, 144])
        );
    }
}
