//! The T5 v1.1 encoder against transformers' `T5EncoderModel` (tiny size, random weights, no
//! attention mask; fixture from `tools/parity/make_t5_fixtures.py`), in both key layouts.

use super::fixture;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;
use faceclip_encoders::t5::relative_position_bucket;
use faceclip_encoders::{T5Config, T5Encoder, T5Layout};

const TOLERANCE: f64 = 1e-4;

fn tiny() -> T5Config {
    T5Config {
        vocab_size: 120,
        ..T5Config::sized(32, 8, 4, 48, 2)
    }
}

fn load<B: Backend>(file: &str, layout: T5Layout, device: &B::Device) -> T5Encoder<B> {
    let vb = crate::open_weights::<B>(&fixture(file), device);
    let encoder = T5Encoder::load(&vb, tiny(), layout).unwrap();
    let report = vb.finish().expect("every tensor of the file is used");
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );
    encoder
}

fn check<B: Backend>(file: &str, layout: T5Layout, device: &B::Device) {
    let encoder = load::<B>(file, layout, device);
    let io = Checkpoint::open(fixture("t5_io.safetensors")).unwrap();
    let (ids, shape) = io.read_i64("ids").unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [shape[0], shape[1]]), device);
    let hidden = encoder.forward(ids).unwrap();
    assert_close(&format!("T5 {layout:?}"), hidden, &io, "hidden", TOLERANCE);
}

#[test]
fn t5_matches_transformers_in_both_layouts_ndarray() {
    check::<NdArray>(
        "t5_hf.safetensors",
        T5Layout::HuggingFace,
        &Default::default(),
    );
    check::<NdArray>("t5_fat5.safetensors", T5Layout::Fat5, &Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn t5_matches_transformers_wgpu() {
    check::<faceclip_core::backend::Wgpu>(
        "t5_hf.safetensors",
        T5Layout::HuggingFace,
        &Default::default(),
    );
}

#[cfg(feature = "cuda")]
#[test]
fn t5_matches_transformers_cuda() {
    check::<faceclip_core::backend::Cuda>(
        "t5_hf.safetensors",
        T5Layout::HuggingFace,
        &Default::default(),
    );
}

#[test]
fn relative_buckets_follow_transformers() {
    // Printed by transformers 4.57.1: T5Attention._relative_position_bucket(r, True, 32, 128).
    let expected = [
        (0, 0),
        (1, 17),
        (-1, 1),
        (7, 23),
        (-7, 7),
        (8, 24),
        (-8, 8),
        (12, 25),
        (-20, 10),
        (64, 30),
        (-127, 15),
        (128, 31),
        (-500, 15),
        (500, 31),
    ];
    for (relative, bucket) in expected {
        assert_eq!(
            relative_position_bucket(relative, 32, 128),
            bucket,
            "distance {relative}"
        );
    }
}

#[test]
fn bad_t5_input_and_checkpoints_are_typed_errors() {
    let device = Default::default();
    let encoder = load::<NdArray>("t5_hf.safetensors", T5Layout::HuggingFace, &device);
    let ids =
        |v: Vec<i64>| Tensor::<NdArray, 2, Int>::from_data(TensorData::new(v, [1, 3]), &device);
    let err = encoder.forward(ids(vec![1, 2, 120])).unwrap_err();
    assert!(err.to_string().contains("120"), "{err}");
    assert!(encoder.forward(ids(vec![1, -2, 3])).is_err());
    // The HF file read with FAT5 names: the first missing key is named.
    let vb = crate::open_weights::<NdArray>(&fixture("t5_hf.safetensors"), &device);
    let err = T5Encoder::load(&vb, tiny(), T5Layout::Fat5).unwrap_err();
    assert!(err.to_string().contains("embed_tokens.weight"), "{err}");
}
