//! Integration tests of faceclip-unet against diffusers at tiny configurations (fixtures from
//! `tools/parity/make_unet_fixtures.py`): the UNet, the VAE (plain and tiled), the whole
//! denoising loop + decode vs `StableDiffusionXLPipeline`, and bad input.

mod pipeline;
mod unet_model;
mod vae;

use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::weights::Checkpoint;

/// Path of a committed fixture.
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-unet", name)
}

/// Tensor `key` of a fixture file, on `device`.
pub fn tensor<B: Backend, const D: usize>(
    io: &Checkpoint,
    key: &str,
    device: &B::Device,
) -> Tensor<B, D> {
    faceclip_core::parity::reference_tensor(io, key, device).unwrap()
}
