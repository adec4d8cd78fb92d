//! Integration tests of faceclip-core: checkpoint reading (real torch archives, damaged files) and
//! shared layers against PyTorch, schedulers against diffusers.
//!
//! One test binary per crate keeps clean builds short (each binary instantiates the backends).

mod checkpoint;
mod nn;
mod schedule;

/// Path of a committed fixture (written by `tools/parity/make_fixtures.py`).
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}
