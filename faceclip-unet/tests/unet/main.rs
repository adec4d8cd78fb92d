//! Integration tests of faceclip-unet: the VAE against diffusers' `AutoencoderKL` at a tiny
//! SDXL-style configuration (fixture from `tools/parity/make_unet_fixtures.py`), and bad input.
//!
//! One test binary per crate keeps clean builds short (each binary instantiates the backends).

mod vae;

/// Path of a committed fixture.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}
