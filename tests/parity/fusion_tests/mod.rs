//! Integration tests of faceclip-fusion: the fuser against transformers' GroundingDINO layers and
//! the whole encoder against a composed PyTorch reference.

mod alternatives;
mod encoder;
mod facet5;
mod fuser;
mod real_size;

/// Path of a committed fixture (written by `tools/parity/make_fixtures.py`).
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-fusion", name)
}
