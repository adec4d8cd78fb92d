//! Tiled VAE decoding as diffusers' `AutoencoderKL.tiled_decode`: overlapping latent tiles are
//! decoded one at a time (bounding the decoder's activation memory) and blended linearly.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::InputError;

use crate::AutoencoderKl;

/// Tile geometry of [`AutoencoderKl::decode_tiled`], in latent pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaeTiling {
    /// Side of a latent tile.
    pub tile: usize,
    /// Latent pixels shared by neighbouring tiles (blended in image space).
    pub overlap: usize,
}

impl VaeTiling {
    /// diffusers' defaults for the SDXL VAE: 128-latent (1024-pixel) tiles, overlap factor 0.25.
    pub fn sdxl() -> Self {
        Self {
            tile: 128,
            overlap: 32,
        }
    }
}

/// Which axis a blend runs along.
#[derive(Clone, Copy)]
enum Axis {
    Vertical = 2,
    Horizontal = 3,
}

/// `b`'s first `extent` rows (or columns) fade in from `a`'s last ones, as diffusers'
/// `blend_v` / `blend_h`.
fn blend<B: Backend>(a: &Tensor<B, 4>, b: Tensor<B, 4>, extent: usize, axis: Axis) -> Tensor<B, 4> {
    let dim = axis as usize;
    let extent = extent.min(a.dims()[dim]).min(b.dims()[dim]);
    if extent == 0 {
        return b;
    }
    let weights: Vec<f32> = (0..extent).map(|y| y as f32 / extent as f32).collect();
    let shape = match axis {
        Axis::Vertical => [1, 1, extent, 1],
        Axis::Horizontal => [1, 1, 1, extent],
    };
    let w = Tensor::<B, 4>::from_data(TensorData::new(weights, shape), &b.device());
    let a_len = a.dims()[dim];
    let a_tail = a.clone().narrow(dim, a_len - extent, extent);
    let b_head = b.clone().narrow(dim, 0, extent);
    let mixed = a_tail * (w.ones_like() - w.clone()) + b_head * w;
    let mut ranges = b.dims().map(|d| 0..d);
    ranges[dim] = 0..extent;
    b.slice_assign(ranges, mixed)
}

impl<B: Backend> AutoencoderKl<B> {
    /// Decodes unscaled latents like [`decode`](Self::decode), one overlapping tile at a time:
    /// peak memory follows the tile size instead of the image size. Latents that fit in one tile
    /// are decoded directly. Same result as diffusers' `enable_tiling()` with
    /// `tile_latent_min_size = tile` and `tile_overlap_factor = overlap / tile`.
    pub fn decode_tiled(
        &self,
        latents: Tensor<B, 4>,
        tiling: VaeTiling,
    ) -> Result<Tensor<B, 4>, InputError> {
        let VaeTiling { tile, overlap } = tiling;
        if tile < 2 || overlap >= tile {
            return Err(InputError::Value {
                what: "VAE tiling".into(),
                reason: format!("tile {tile} must be ≥ 2 and overlap {overlap} smaller than it"),
            });
        }
        let [_, _, h, w] = latents.dims();
        if h <= tile && w <= tile {
            return self.decode(latents);
        }
        let scale = self.downscale();
        let stride = tile - overlap;
        let (extent, limit) = (overlap * scale, stride * scale);
        let mut rows: Vec<Vec<Tensor<B, 4>>> = Vec::new();
        for i in (0..h).step_by(stride) {
            let mut row: Vec<Tensor<B, 4>> = Vec::new();
            for j in (0..w).step_by(stride) {
                let part =
                    latents
                        .clone()
                        .narrow(2, i, tile.min(h - i))
                        .narrow(3, j, tile.min(w - j));
                let mut decoded = self.decode(part)?;
                // Blending uses the neighbours as already blended (diffusers blends in place).
                if let Some(above) = rows.last() {
                    decoded = blend(&above[row.len()], decoded, extent, Axis::Vertical);
                }
                if let Some(left) = row.last() {
                    decoded = blend(left, decoded, extent, Axis::Horizontal);
                }
                row.push(decoded);
            }
            rows.push(row);
        }
        let crop = |t: &Tensor<B, 4>| {
            let [_, _, th, tw] = t.dims();
            t.clone()
                .narrow(2, 0, th.min(limit))
                .narrow(3, 0, tw.min(limit))
        };
        let stitched = rows
            .iter()
            .map(|row| Tensor::cat(row.iter().map(crop).collect(), 3))
            .collect();
        Ok(Tensor::cat(stitched, 2))
    }
}
