//! Shared layers against PyTorch (fixtures from `tools/parity/make_fixtures.py`).

use super::fixture;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::nn::PackedMultiheadAttention;
use faceclip_core::parity::{assert_close, tolerance_on};
use faceclip_core::weights::Checkpoint;

const TOLERANCE: f64 = 1e-4;

fn input<B: Backend>(io: &Checkpoint, key: &str, device: &B::Device) -> Tensor<B, 3> {
    let (values, s) = io.read_f32(key).unwrap();
    Tensor::from_data(TensorData::new(values, [s[0], s[1], s[2]]), device)
}

fn check_packed_attention<B: Backend>(device: &B::Device) {
    let vb = crate::open_weights::<B>(&fixture("mha_weights.safetensors"), device);
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

#[cfg(feature = "cuda")]
#[test]
fn packed_attention_matches_torch_cuda() {
    check_packed_attention::<faceclip_core::backend::Cuda>(&Default::default());
}

/// `conv_forward` on a 1×1 convolution over a large map (where Burn 0.21's wgpu convolution is
/// wrong) against the sum written out on the host; 3×3 convolutions take Burn's own path.
fn check_pointwise_conv<B: Backend>(device: &B::Device) {
    use burn::module::Param;
    use burn::nn::conv::Conv2d;
    use burn::nn::PaddingConfig2d;
    use faceclip_core::nn::conv_forward;
    use faceclip_core::parity::{relative_l2, to_vec};

    let (c_in, c_out, h, w) = (8, 16, 256, 256);
    let value = |i: usize, salt: usize| ((i * 7919 + salt * 104729) % 1000) as f32 / 500.0 - 1.0;
    let x: Vec<f32> = (0..c_in * h * w).map(|i| value(i, 1)).collect();
    let weight: Vec<f32> = (0..c_out * c_in).map(|i| value(i, 2)).collect();
    let bias: Vec<f32> = (0..c_out).map(|i| value(i, 3)).collect();
    let mut expected = vec![0f32; c_out * h * w];
    for o in 0..c_out {
        for p in 0..h * w {
            expected[o * h * w + p] = bias[o]
                + (0..c_in)
                    .map(|c| weight[o * c_in + c] * x[c * h * w + p])
                    .sum::<f32>();
        }
    }
    let conv = Conv2d {
        weight: Param::from_tensor(Tensor::<B, 4>::from_data(
            TensorData::new(weight, [c_out, c_in, 1, 1]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::<B, 1>::from_data(
            TensorData::new(bias, [c_out]),
            device,
        ))),
        stride: [1, 1],
        kernel_size: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(0, 0, 0, 0),
    };
    let input = Tensor::<B, 4>::from_data(TensorData::new(x, [1, c_in, h, w]), device);
    let err = relative_l2(&to_vec(conv_forward(&conv, input)), &expected);
    let tolerance = tolerance_on::<B>(device, 1e-5);
    assert!(
        err < tolerance,
        "pointwise conv: relative L2 error {err:.2e} > {tolerance:e}"
    );
}

#[test]
fn pointwise_conv_matches_host_sum_ndarray() {
    check_pointwise_conv::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn pointwise_conv_matches_host_sum_wgpu() {
    check_pointwise_conv::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn pointwise_conv_matches_host_sum_cuda() {
    check_pointwise_conv::<faceclip_core::backend::Cuda>(&Default::default());
}
