//! FLUX's 3-axis rotary position embedding and the 2×2 latent packing that gives image tokens
//! their (0, row, column) ids.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::InputError;

/// Position ids of the packed image tokens of a `[h, w]` latent (`h`, `w` even): token
/// `(r, c)` of the `h/2 × w/2` grid has id `(0, r, c)`, in row-major order.
pub fn image_ids(latent_h: usize, latent_w: usize) -> Vec<[f64; 3]> {
    (0..latent_h / 2)
        .flat_map(|r| (0..latent_w / 2).map(move |c| [0.0, r as f64, c as f64]))
        .collect()
}

/// diffusers' `FluxPosEmbed` on the host: for every id, per axis `i` with `d_i` dimensions,
/// angles `pos · θ^(−2j/d_i)` (float64), each repeated twice (interleaved pairs), then cos and
/// sin as `[tokens, Σ d_i]` float32 tensors.
pub fn rotary_tables<B: Backend>(
    ids: &[[f64; 3]],
    axes: [usize; 3],
    theta: f64,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let dim: usize = axes.iter().sum();
    let mut cos = Vec::with_capacity(ids.len() * dim);
    let mut sin = Vec::with_capacity(ids.len() * dim);
    for id in ids {
        for (axis, &d) in axes.iter().enumerate() {
            for j in 0..d / 2 {
                let frequency = 1.0 / theta.powf((2 * j) as f64 / d as f64);
                let angle = id[axis] * frequency;
                for _ in 0..2 {
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
    }
    let shape = [ids.len(), dim];
    (
        Tensor::from_data(TensorData::new(cos, shape), device),
        Tensor::from_data(TensorData::new(sin, shape), device),
    )
}

/// Rotates interleaved pairs of `x [batch, heads, tokens, d]`:
/// `x·cos + rot(x)·sin` with `rot(a, b) = (−b, a)` (diffusers' `apply_rotary_emb`, real form).
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [b, h, n, d] = x.dims();
    let pairs = x.clone().reshape([b, h, n, d / 2, 2]);
    let real = pairs.clone().narrow(4, 0, 1);
    let imaginary = pairs.narrow(4, 1, 1);
    let rotated = Tensor::cat(vec![imaginary.neg(), real], 4).reshape([b, h, n, d]);
    let cos = cos.clone().unsqueeze::<4>();
    let sin = sin.clone().unsqueeze::<4>();
    x * cos + rotated * sin
}

/// `[batch, c, h, w]` latents → `[batch, (h/2)(w/2), 4c]` tokens (FluxPipeline's `_pack_latents`).
pub fn pack_latents<B: Backend>(latents: Tensor<B, 4>) -> Result<Tensor<B, 3>, InputError> {
    let [b, c, h, w] = latents.dims();
    if !h.is_multiple_of(2) || !w.is_multiple_of(2) || h == 0 || w == 0 {
        return Err(InputError::Shape {
            what: "FLUX latents".into(),
            expected: "[batch, channels, h, w] with h and w even and non-zero".into(),
            found: vec![b, c, h, w],
        });
    }
    Ok(latents
        .reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([b, (h / 2) * (w / 2), c * 4]))
}

/// The inverse of [`pack_latents`] for a `[h, w]` latent (`_unpack_latents`).
pub fn unpack_latents<B: Backend>(
    tokens: Tensor<B, 3>,
    latent_h: usize,
    latent_w: usize,
) -> Result<Tensor<B, 4>, InputError> {
    let [b, n, c4] = tokens.dims();
    if n != (latent_h / 2) * (latent_w / 2)
        || !c4.is_multiple_of(4)
        || !latent_h.is_multiple_of(2)
        || !latent_w.is_multiple_of(2)
    {
        return Err(InputError::Shape {
            what: "packed FLUX tokens".into(),
            expected: format!("[batch, {}, 4·channels]", (latent_h / 2) * (latent_w / 2)),
            found: vec![b, n, c4],
        });
    }
    let c = c4 / 4;
    Ok(tokens
        .reshape([b, latent_h / 2, latent_w / 2, c, 2, 2])
        .permute([0, 3, 1, 4, 2, 5])
        .reshape([b, c, latent_h, latent_w]))
}
