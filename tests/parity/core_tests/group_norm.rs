//! `nn::group_norm` / `nn::group_norm_silu` against `torch.nn.GroupNorm` (+ SiLU), fixtures from
//! `tools/parity/make_kernel_fixtures.py`; on wgpu and CUDA they run the fused CubeCL kernels,
//! which these tests also check are the path taken.

use super::fixture;
use crate::reference;
use burn::module::Param;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::{fused_group_norm, NdArray};
use faceclip_core::nn::{group_norm, group_norm_silu};
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;

/// Relative L2. The `offset` case (mean 50, spread 0.1) cannot do better in f32: one ulp of the
/// mean (3.8e-6) is already 3.8e-5 of the spread, whichever way the mean is summed.
const TOLERANCE: f64 = 1e-4;

/// The fixture's norm of case `name`, its input and its group count.
fn case<B: Backend, const D: usize>(
    io: &Checkpoint,
    name: &str,
    device: &B::Device,
) -> (GroupNorm<B>, Tensor<B, D>) {
    // Metadata is read on the host: a bf16 backend would round it (10 000 to 9 984).
    let (meta, _) = io.read_f32(&format!("{name}.meta")).unwrap();
    let (groups, epsilon) = (meta[0] as usize, f64::from(meta[1]) * 1e-9);
    let x = reference::<B, D>(io, &format!("{name}.x"), device);
    let channels = x.dims()[1];
    let mut norm = GroupNormConfig::new(groups, channels)
        .with_epsilon(epsilon)
        .init::<B>(device);
    let affine = |key: &str| {
        Some(Param::from_tensor(reference::<B, 1>(
            io,
            &format!("{name}.{key}"),
            device,
        )))
    };
    norm.gamma = affine("weight");
    norm.beta = affine("bias");
    (norm, x)
}

fn check_case<B: Backend, const D: usize>(io: &Checkpoint, name: &str, device: &B::Device) {
    let (norm, x) = case::<B, D>(io, name, device);
    let label = format!("group norm on {}", B::name(device));
    assert_close(
        &label,
        group_norm(&norm, x.clone()),
        io,
        &format!("{name}.norm"),
        TOLERANCE,
    );
    assert_close(
        &label,
        group_norm_silu(&norm, x),
        io,
        &format!("{name}.norm_silu"),
        TOLERANCE,
    );
}

pub(super) fn check_group_norm<B: Backend>(device: &B::Device) {
    let io = Checkpoint::open(fixture("group_norm.safetensors")).unwrap();
    for name in ["chunked", "sdxl_groups", "offset"] {
        if name == "offset" && crate::half_precision::<B>() {
            continue;
        }
        check_case::<B, 4>(&io, name, device);
    }
    check_case::<B, 3>(&io, "rank3", device);
}

/// Whether `fused_group_norm` takes the fixture's first case on `B`.
fn fuses<B: Backend>(device: &B::Device) -> bool {
    let io = Checkpoint::open(fixture("group_norm.safetensors")).unwrap();
    let (norm, x) = case::<B, 4>(&io, "chunked", device);
    let (gamma, beta) = (norm.gamma.unwrap().val(), norm.beta.unwrap().val());
    fused_group_norm(&x, &gamma, &beta, norm.num_groups, norm.epsilon, true).is_some()
}

#[test]
fn group_norm_matches_torch_ndarray() {
    check_group_norm::<NdArray>(&Default::default());
    assert!(
        !fuses::<NdArray>(&Default::default()),
        "ndarray has no fused kernel"
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn group_norm_matches_torch_wgpu() {
    use faceclip_core::backend::Wgpu;
    assert!(
        fuses::<Wgpu>(&Default::default()),
        "wgpu takes the fused kernels"
    );
    check_group_norm::<Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn group_norm_matches_torch_cuda() {
    use faceclip_core::backend::Cuda;
    assert!(
        fuses::<Cuda>(&Default::default()),
        "CUDA takes the fused kernels"
    );
    check_group_norm::<Cuda>(&Default::default());
}
