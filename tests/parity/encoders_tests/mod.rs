//! Integration tests of faceclip-encoders: parity with open_clip, transformers and timm, bad
//! input, and the real-size presets.

mod bad_input;
mod face_vit;
mod real_size;
mod t5;
mod text_tower;
mod tokenizer;

/// Path of a committed fixture (written by `tools/parity/make_fixtures.py`).
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-encoders", name)
}
