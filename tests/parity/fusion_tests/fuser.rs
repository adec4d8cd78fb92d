//! FaceCLIP's fuser against transformers' GroundingDINO encoder layers (tiny width, random
//! weights renamed to the released key names; fixture from `tools/parity/make_fixtures.py`).

use super::fixture;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::{Checkpoint, Weights};
use faceclip_fusion::fuser::{
    BiAttentionBlock, DeformableConfig, DeformableLayer, TextEnhancerLayer,
};
use faceclip_fusion::{FaceClipFuser, FuserConfig};

const TOLERANCE: f64 = 1e-4;
const D: usize = 32;
const FFN: usize = 64;

fn input<B: Backend>(io: &Checkpoint, key: &str, device: &B::Device) -> Tensor<B, 3> {
    let (values, s) = io.read_f32(key).unwrap();
    Tensor::from_data(TensorData::new(values, [s[0], s[1], s[2]]), device)
}

fn config() -> FuserConfig {
    FuserConfig {
        layers: 2,
        ..FuserConfig::with_ffn(D, FFN)
    }
}

fn check_layers<B: Backend>(device: &B::Device) {
    let vb = crate::open_weights::<B>(&fixture("fuser_weights.safetensors"), device);
    let io = Checkpoint::open(fixture("fuser_io.safetensors")).unwrap();
    let [v, l, pos_v, pos_l] = ["v", "l", "pos_v", "pos_l"].map(|k| input::<B>(&io, k, device));
    let enc = vb.pp("fuser").pp("encoder");

    let fusion =
        BiAttentionBlock::load(&enc.pp("fusion_layers").pp(0), D, FFN / 2, 4, 1e-5).unwrap();
    let (fv, fl) = fusion.forward(v.clone(), l.clone());
    assert_close("bi-attention", fv, &io, "fusion_v", TOLERANCE);
    assert_close("bi-attention", fl, &io, "fusion_l", TOLERANCE);

    let text = TextEnhancerLayer::load(&enc.pp("text_layers").pp(0), D, 4, FFN / 2, 1e-5).unwrap();
    assert_close(
        "text enhancer",
        text.forward(l.clone(), pos_l.clone()),
        &io,
        "text",
        TOLERANCE,
    );

    let deformable_config = DeformableConfig {
        d_model: D,
        heads: 8,
        points: 4,
        ffn: FFN,
        grid: [12, 12],
    };
    let deformable =
        DeformableLayer::load(&enc.pp("layers").pp(0), deformable_config, 1e-5).unwrap();
    assert_close(
        "deformable",
        deformable.forward(v.clone(), pos_v.clone()).unwrap(),
        &io,
        "deformable",
        TOLERANCE,
    );
}

fn check_fuser<B: Backend>(device: &B::Device) {
    let vb = crate::open_weights::<B>(&fixture("fuser_weights.safetensors"), device);
    let fuser = FaceClipFuser::load(&vb.pp("fuser"), &config()).unwrap();
    let report = vb
        .finish()
        .expect("strict load: every key used or ignorable");
    assert_eq!(report.ignored, vec!["fuser.enc_output.weight"]);
    let io = Checkpoint::open(fixture("fuser_io.safetensors")).unwrap();
    let [v, l, pos_v, pos_l] = ["v", "l", "pos_v", "pos_l"].map(|k| input::<B>(&io, k, device));
    let text = fuser
        .forward(l.clone(), pos_l.clone(), v.clone(), pos_v.clone())
        .unwrap();
    assert_close("fuser", text, &io, "fused", TOLERANCE);
    let (text, face) = fuser.forward_both(l, pos_l, v, pos_v).unwrap();
    assert_close("fuser", text, &io, "fused", TOLERANCE);
    assert_close("fuser", face, &io, "fused_face", TOLERANCE);
}

#[test]
fn fuser_layers_match_grounding_dino_ndarray() {
    check_layers::<NdArray>(&Default::default());
}

#[test]
fn fuser_matches_reference_loop_ndarray() {
    check_fuser::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn fuser_layers_match_grounding_dino_wgpu() {
    check_layers::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn fuser_layers_match_grounding_dino_cuda() {
    check_layers::<faceclip_core::backend::Cuda>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn fuser_matches_reference_loop_wgpu() {
    check_fuser::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn fuser_matches_reference_loop_cuda() {
    check_fuser::<faceclip_core::backend::Cuda>(&Default::default());
}

#[test]
fn wrong_face_token_count_is_rejected() {
    let device = Default::default();
    let vb = Weights::<NdArray>::random(&device);
    let c = DeformableConfig {
        d_model: D,
        heads: 8,
        points: 4,
        ffn: FFN,
        grid: [12, 12],
    };
    let layer = DeformableLayer::load(&vb, c, 1e-5).unwrap();
    let v = Tensor::<NdArray, 3>::zeros([1, 100, D], &device);
    assert!(matches!(
        layer.forward(v.clone(), v),
        Err(faceclip_core::InputError::Shape { .. })
    ));
}
