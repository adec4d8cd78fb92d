//! Shared layers against PyTorch (fixtures from `tools/parity/make_fixtures.py`).

use crate::fixture;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::nn::PackedMultiheadAttention;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::{Checkpoint, KeyRemap, LoadOptions, Weights};

const TOLERANCE: f64 = 1e-4;

fn input<B: Backend>(io: &Checkpoint, key: &str, device: &B::Device) -> Tensor<B, 3> {
    let (values, s) = io.read_f32(key).unwrap();
    Tensor::from_data(TensorData::new(values, [s[0], s[1], s[2]]), device)
}

fn check_packed_attention<B: Backend>(device: &B::Device) {
    let vb = Weights::<B>::open(
        fixture("mha_weights.safetensors"),
        &KeyRemap::new(),
        LoadOptions::default(),
        device,
    )
    .unwrap();
    let mha = PackedMultiheadAttention::load(&vb, 48, 4).unwrap();
    assert!(vb.finish().unwrap().unexpected.is_empty());
    let io = Checkpoint::open(fixture("mha_io.safetensors")).unwrap();
    let (x, pos) = (input::<B>(&io, "x", device), input::<B>(&io, "pos", device));
    let outputs = [
        (
            "detr",
            mha.forward(x.clone() + pos.clone(), x.clone() + pos, x.clone()),
        ),
        ("causal", mha.forward_self(x, true)),
    ];
    for (key, actual) in outputs {
        assert_close("packed MHA", actual, &io, key, TOLERANCE);
    }
}

#[test]
fn packed_attention_matches_torch_ndarray() {
    check_packed_attention::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn packed_attention_matches_torch_wgpu() {
    check_packed_attention::<faceclip_core::backend::Wgpu>(&Default::default());
}
