//! Single-level deformable self-attention over the face-patch grid (`layers.{i}`), post-norm.
//!
//! With one small level (12×12) the sparse sampling is written as a dense attention matrix:
//! for every query and head, `M[q, k]` sums, over the sampling points, the point's attention
//! weight times the bilinear weight of grid cell `k` (corners outside the grid contribute
//! nothing, as `grid_sample` with zero padding). Then `out = M · V`: no gather kernel needed,
//! and the result equals PyTorch's `grid_sample` formulation.

use burn::module::Module;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::fused_sampling_matrix;
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{load_layer_norm, load_linear, merge_heads, split_heads, Linear};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

/// Shape of a deformable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeformableConfig {
    /// Model width `d`.
    pub d_model: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Sampling points per head (4).
    pub points: usize,
    /// FFN width (2048).
    pub ffn: usize,
    /// Grid `[height, width]` of the value map (`[12, 12]`).
    pub grid: [usize; 2],
}

/// ```text
/// query = v + pos;  V = value_proj(v) (per head, a row-major H×W map)
/// off = sampling_offsets(query) [heads, points, (x, y)];  α = softmax_points(attention_weights(query))
/// px = col(q) + off.x,  py = row(q) + off.y            (pixel units, align_corners=False)
/// out = output_proj(Σ_p α_p · bilinear(V, px_p, py_p))  (zeros outside the grid)
/// v = norm1(v + out);  v = norm2(v + linear2(relu(linear1(v))))
/// ```
#[derive(Module, Debug)]
pub struct DeformableLayer<B: Backend> {
    sampling_offsets: Linear<B>,
    attention_weights: Linear<B>,
    value_proj: Linear<B>,
    output_proj: Linear<B>,
    norm1: LayerNorm<B>,
    linear1: Linear<B>,
    linear2: Linear<B>,
    norm2: LayerNorm<B>,
    heads: usize,
    points: usize,
    grid: [usize; 2],
}

impl<B: Backend> DeformableLayer<B> {
    /// Loads `self_attn.{sampling_offsets,attention_weights,value_proj,output_proj}`, `norm1`,
    /// `linear1`, `linear2`, `norm2`. Offsets are laid out `((head·levels + level)·points + point)·2 + xy`
    /// with one level.
    pub fn load(vb: &Weights<B>, c: DeformableConfig, eps: f64) -> Result<Self, LoadError> {
        if c.heads == 0
            || !c.d_model.is_multiple_of(c.heads)
            || c.points == 0
            || c.grid.contains(&0)
        {
            return Err(LoadError::Config(format!(
                "invalid deformable attention config {c:?}"
            )));
        }
        let attn = vb.pp("self_attn");
        let d = c.d_model;
        Ok(Self {
            sampling_offsets: load_linear(
                &attn.pp("sampling_offsets"),
                d,
                c.heads * c.points * 2,
                true,
            )?,
            attention_weights: load_linear(
                &attn.pp("attention_weights"),
                d,
                c.heads * c.points,
                true,
            )?,
            value_proj: load_linear(&attn.pp("value_proj"), d, d, true)?,
            output_proj: load_linear(&attn.pp("output_proj"), d, d, true)?,
            norm1: load_layer_norm(&vb.pp("norm1"), d, eps)?,
            linear1: load_linear(&vb.pp("linear1"), d, c.ffn, true)?,
            linear2: load_linear(&vb.pp("linear2"), c.ffn, d, true)?,
            norm2: load_layer_norm(&vb.pp("norm2"), d, eps)?,
            heads: c.heads,
            points: c.points,
            grid: c.grid,
        })
    }

    /// `(v [B, H·W, d], pos [B or 1, H·W, d]) -> [B, H·W, d]`.
    pub fn forward(&self, v: Tensor<B, 3>, pos: Tensor<B, 3>) -> Result<Tensor<B, 3>, InputError> {
        let [b, n, d] = v.dims();
        let [gh, gw] = self.grid;
        if n != gh * gw {
            return Err(InputError::Shape {
                what: "face patch tokens".into(),
                expected: format!("[batch, {} = {gh}×{gw}, {d}]", gh * gw),
                found: vec![b, n, d],
            });
        }
        let (heads, points) = (self.heads, self.points);
        let query = v.clone() + pos;
        let offsets = self
            .sampling_offsets
            .forward(query.clone())
            .reshape([b, n, heads, points, 2]);
        let alpha = softmax(
            self.attention_weights
                .forward(query)
                .reshape([b, n, heads, points]),
            3,
        );
        let weights = self.sampling_matrix(offsets, alpha); // [b, heads, n, n]
        let values = split_heads(self.value_proj.forward(v.clone()), heads);
        let out = merge_heads(weights.matmul(values));
        let v = self.norm1.forward(v + self.output_proj.forward(out));
        let ffn = self.linear2.forward(relu(self.linear1.forward(v.clone())));
        Ok(self.norm2.forward(v + ffn))
    }

    /// Dense sampling weights `[B, heads, queries, cells]` from offsets `[B, N, heads, points, 2]`
    /// and point weights `[B, N, heads, points]`: one kernel on the CubeCL backends, else
    /// [`sampling_matrix`].
    fn sampling_matrix(&self, offsets: Tensor<B, 5>, alpha: Tensor<B, 4>) -> Tensor<B, 4> {
        fused_sampling_matrix(&alpha, &offsets, self.grid)
            .unwrap_or_else(|| sampling_matrix(offsets, alpha, self.grid))
    }
}

/// [`DeformableLayer`]'s sampling matrix from Burn's ops: per corner of the bilinear cell, its
/// weight scattered (one-hot) onto the cells it falls on.
fn sampling_matrix<B: Backend>(
    offsets: Tensor<B, 5>,
    alpha: Tensor<B, 4>,
    [gh, gw]: [usize; 2],
) -> Tensor<B, 4> {
    let [b, n, heads, points, _] = offsets.dims();
    let device = offsets.device();
    let cols: Vec<f32> = (0..n).map(|q| (q % gw) as f32).collect();
    let rows: Vec<f32> = (0..n).map(|q| (q / gw) as f32).collect();
    let grid_coord = |c: Vec<f32>| {
        Tensor::<B, 1>::from_data(TensorData::new(c, [n]), &device).reshape([1, n, 1, 1])
    };
    let px = offsets
        .clone()
        .narrow(4, 0, 1)
        .reshape([b, n, heads, points])
        + grid_coord(cols);
    let py = offsets.narrow(4, 1, 1).reshape([b, n, heads, points]) + grid_coord(rows);
    let (x0, y0) = (px.clone().floor(), py.clone().floor());
    let (fx, fy) = (px - x0.clone(), py - y0.clone());
    let mut matrix = Tensor::<B, 4>::zeros([b, n, heads, n], &device);
    for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
        let (x, y) = (x0.clone() + dx, y0.clone() + dy);
        let wx = if dx == 0.0 {
            fx.clone().neg() + 1.0
        } else {
            fx.clone()
        };
        let wy = if dy == 0.0 {
            fy.clone().neg() + 1.0
        } else {
            fy.clone()
        };
        let inside = x.clone().greater_equal_elem(0.0).float()
            * x.clone().lower_equal_elem((gw - 1) as f32).float()
            * y.clone().greater_equal_elem(0.0).float()
            * y.clone().lower_equal_elem((gh - 1) as f32).float();
        let weight = alpha.clone() * wx * wy * inside;
        let cell = (y * gw as f32 + x).clamp(0.0, (n - 1) as f32);
        let scattered = cell.one_hot::<5>(n) * weight.unsqueeze_dim::<5>(4);
        matrix = matrix + scattered.sum_dim(3).reshape([b, n, heads, n]);
    }
    matrix.swap_dims(1, 2)
}
