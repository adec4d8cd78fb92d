//! The face ViT against timm's `VisionTransformer` (configured as the ArcFace ViT) plus the
//! plain-torch identity head, loaded from a real `torch.save` archive in bf16 with the released
//! key layout (`model.face_clip_l.face_encoder.*`); fixture from `tools/parity/make_fixtures.py`.

use super::fixture;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::nn::resize_bilinear;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::{Checkpoint, KeyRemap, LoadOptions, Weights};
use faceclip_encoders::{FaceVit, FaceVitConfig};

const TOLERANCE: f64 = 1e-4;

fn check_face_vit<B: Backend>(device: &B::Device) {
    let vb = Weights::<B>::open(
        fixture("face_vit_weights.pt"),
        &KeyRemap::faceclip(),
        LoadOptions::default(),
        device,
    )
    .unwrap();
    let scope = vb.pp("face_clip_l.face_encoder");
    let vit = FaceVit::load(&scope, FaceVitConfig::sized(32, 2, 2, 24)).unwrap();
    let report = scope.finish().expect("strict load");
    assert!(
        report.unexpected.is_empty() && report.missing.is_empty(),
        "{report}"
    );
    assert!(
        report.ignored.iter().any(|k| k.ends_with("mask_token")),
        "{report:?}"
    );
    assert!(
        report
            .ignored
            .iter()
            .any(|k| k.ends_with("num_batches_tracked")),
        "{report:?}"
    );

    let io = Checkpoint::open(fixture("face_vit_io.safetensors")).unwrap();
    let (images, shape) = io.read_f32("images").unwrap();
    let images = Tensor::<B, 4>::from_data(
        TensorData::new(images, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    );
    // Resizing is a weighted sum of two neighbours per axis: the tighter bound of exact ops.
    assert_close(
        "face ViT",
        resize_bilinear(images.clone(), 112, 112),
        &io,
        "resized",
        1e-5,
    );
    assert_close(
        "face ViT",
        resize_bilinear(images.clone().slice([0..2, 0..3, 0..128, 0..128]), 32, 32),
        &io,
        "quarter",
        1e-5,
    );
    let out = vit.forward(images).unwrap();
    assert_close("face ViT", out.patch_tokens, &io, "tokens", TOLERANCE);
    assert_close("face ViT", out.identity, &io, "identity", TOLERANCE);
}

#[test]
fn face_vit_matches_timm_ndarray() {
    check_face_vit::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn face_vit_matches_timm_wgpu() {
    check_face_vit::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn face_vit_matches_timm_cuda() {
    check_face_vit::<faceclip_core::backend::Cuda>(&Default::default());
}
