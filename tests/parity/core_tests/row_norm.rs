//! `nn::LayerNorm`, `nn::RmsNorm` and `nn::modulated_layer_norm` against `torch.nn.LayerNorm`,
//! `torch.nn.RMSNorm` and FLUX's modulation (fixtures from
//! `tools/parity/make_kernel_fixtures.py`); on wgpu and CUDA they run the fused row-norm kernel,
//! which these tests also check is the path taken.

use super::fixture;
use crate::reference as tensor;
use burn::module::Param;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use faceclip_core::backend::{fused_row_norm, NdArray};
use faceclip_core::nn::{modulated_layer_norm, LayerNorm, RmsNorm};
use faceclip_core::parity::{assert_close, relative_l2, to_vec};
use faceclip_core::weights::Checkpoint;

/// Relative L2; the `layer_offset` case (mean 30, spread 0.05) is limited by f32 itself: one ulp
/// of the mean (1.9e-6) is 3.8e-5 of the spread.
const TOLERANCE: f64 = 1e-4;

/// Case `name`'s epsilon, read on the host (a bf16 backend would round it).
fn epsilon(io: &Checkpoint, name: &str) -> f64 {
    f64::from(io.read_f32(&format!("{name}.eps")).unwrap().0[0])
}

fn layer_norm<B: Backend>(
    io: &Checkpoint,
    name: &str,
    bias: bool,
    device: &B::Device,
) -> LayerNorm<B> {
    let param =
        |key: &str| Param::from_tensor(tensor::<B, 1>(io, &format!("{name}.{key}"), device));
    LayerNorm {
        gamma: param("weight"),
        beta: bias.then(|| param("bias")),
        epsilon: epsilon(io, name),
    }
}

pub(super) fn check_row_norms<B: Backend>(device: &B::Device) {
    let io = Checkpoint::open(fixture("row_norm.safetensors")).unwrap();
    let label = format!("row norm on {}", B::name(device));
    for (name, bias) in [
        ("layer", true),
        ("layer_no_bias", false),
        ("layer_narrow", true),
        ("layer_offset", true),
    ] {
        if name == "layer_offset" && crate::half_precision::<B>() {
            continue;
        }
        let norm = layer_norm::<B>(&io, name, bias, device);
        let x = tensor::<B, 3>(&io, &format!("{name}.x"), device);
        assert_close(
            &label,
            norm.forward(x),
            &io,
            &format!("{name}.y"),
            TOLERANCE,
        );
    }

    let rms = RmsNorm {
        weight: Param::from_tensor(tensor::<B, 1>(&io, "rms.weight", device)),
        eps: epsilon(&io, "rms"),
    };
    let x = tensor::<B, 4>(&io, "rms.x", device);
    assert_close(&label, rms.forward(x), &io, "rms.y", TOLERANCE);

    let x = tensor::<B, 3>(&io, "modulated.x", device);
    let shift = tensor::<B, 2>(&io, "modulated.shift", device);
    let scale = tensor::<B, 2>(&io, "modulated.scale", device);
    let eps = epsilon(&io, "modulated");
    let y = modulated_layer_norm(x, &shift, &scale, eps);
    assert_close(&label, y, &io, "modulated.y", TOLERANCE);
}

#[test]
fn row_norms_match_torch_ndarray() {
    let device = Default::default();
    check_row_norms::<NdArray>(&device);
    let x = Tensor::<NdArray, 2>::ones([2, 4], &device);
    let gamma = Tensor::<NdArray, 1>::ones([4], &device);
    assert!(
        fused_row_norm(&x, &gamma, None, 1e-5, true).is_none(),
        "ndarray has no fused kernel"
    );
}

/// The fused kernel against the same norm in Burn's ops where the fixture cannot reach: more
/// rows than one grid axis holds (the kernel's second axis), per-sample affine over them.
fn check_many_rows<B: Backend>(device: &B::Device) {
    let rows = 35_000;
    let x = Tensor::<B, 3>::random([2, rows, 6], Distribution::Normal(1.0, 2.0), device);
    let gamma = Tensor::<B, 2>::random([2, 6], Distribution::Normal(1.0, 0.3), device);
    let beta = Tensor::<B, 2>::random([2, 6], Distribution::Normal(0.0, 0.3), device);
    let fused = fused_row_norm(&x, &gamma, Some(&beta), 1e-5, true).expect("the kernel takes it");
    let centred = x.clone() - x.mean_dim(2);
    let normalised = centred.clone() / (centred.powi_scalar(2).mean_dim(2) + 1e-5).sqrt();
    let expected = normalised * gamma.unsqueeze_dim(1) + beta.unsqueeze_dim(1);
    let err = relative_l2(&to_vec(fused), &to_vec(expected));
    let name = B::name(device);
    println!(
        "row norm on {name} over {} rows: relative L2 {err:.3e}",
        2 * rows
    );
    assert!(err < 1e-5, "relative L2 {err:.3e}");
}

#[cfg(feature = "wgpu")]
#[test]
fn row_norms_match_torch_wgpu() {
    let device = Default::default();
    check_row_norms::<faceclip_core::backend::Wgpu>(&device);
    check_many_rows::<faceclip_core::backend::Wgpu>(&device);
}

#[cfg(feature = "cuda")]
#[test]
fn row_norms_match_torch_cuda() {
    let device = Default::default();
    check_row_norms::<faceclip_core::backend::Cuda>(&device);
    check_many_rows::<faceclip_core::backend::Cuda>(&device);
}
