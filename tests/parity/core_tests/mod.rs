//! Integration tests of faceclip-core: checkpoint reading (real torch archives, damaged files) and
//! shared layers against PyTorch, schedulers against diffusers.

mod checkpoint;
mod group_norm;
mod linear;
mod nn;
mod row_norm;
mod schedule;

/// Path of a committed fixture (written by `tools/parity/make_fixtures.py`).
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-core", name)
}
