//! OpenCLIP text towers against `open_clip.transformer.TextTransformer` (tiny sizes, random
//! weights stored as bf16; fixture written by `tools/parity/make_fixtures.py`).

use super::fixture;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::nn::Activation;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::{Checkpoint, IgnoreRules, KeyRemap, LoadOptions, Weights};
use faceclip_encoders::{TextLayout, TextTower, TextTowerConfig, TokenOverride};

const TOLERANCE: f64 = 1e-4;

fn quickgelu_config() -> TextTowerConfig {
    TextTowerConfig {
        projection_dim: Some(32),
        layout: TextLayout::OpenClip,
        ..TextTowerConfig::sized(32, 3, 2, Activation::QuickGelu)
    }
}

fn gelu_config() -> TextTowerConfig {
    TextTowerConfig {
        vocab_size: 1001,
        projection_dim: Some(48),
        layout: TextLayout::OpenClip,
        ..TextTowerConfig::sized(48, 2, 3, Activation::Gelu)
    }
}

fn check_tower<B: Backend>(name: &str, config: TextTowerConfig, device: &B::Device) {
    let options = LoadOptions {
        strict: true,
        ignore: IgnoreRules::none(),
    };
    let path = fixture(&format!("{name}_weights.safetensors"));
    let vb = Weights::<B>::open(path, &KeyRemap::new(), options, device).unwrap();
    let tower = TextTower::load(&vb, config).unwrap();
    let report = vb.finish().expect("strict load leaves no unexpected key");
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );

    let io = Checkpoint::open(fixture(&format!("{name}_io.safetensors"))).unwrap();
    let (ids, shape) = io.read_i64("input_ids").unwrap();
    let (mask, _) = io.read_i64("replace_mask").unwrap();
    let (face, face_shape) = io.read_f32("face_token").unwrap();
    let [batch, seq] = [shape[0], shape[1]];
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let mask: Vec<bool> = mask.iter().map(|&m| m != 0).collect();
    let token_override = TokenOverride {
        mask: Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [batch, seq]), device),
        embeddings: Tensor::from_data(
            TensorData::new(face, [face_shape[0], face_shape[1]]),
            device,
        ),
    };

    let out = tower.forward(ids.clone(), Some(&token_override)).unwrap();
    assert_close(name, out.hidden, &io, "hidden", TOLERANCE);
    assert_close(name, out.pooled, &io, "pooled", TOLERANCE);

    // Without the override, the projected pooled vector must equal open_clip's own forward.
    let plain = tower.forward(ids, None).unwrap();
    assert_close(
        name,
        tower.project(plain.pooled).expect("projection loaded"),
        &io,
        "projected",
        TOLERANCE,
    );
}

#[test]
fn quickgelu_tower_matches_open_clip_ndarray() {
    check_tower::<NdArray>("text_quickgelu", quickgelu_config(), &Default::default());
}

#[test]
fn gelu_tower_matches_open_clip_ndarray() {
    check_tower::<NdArray>("text_gelu", gelu_config(), &Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn quickgelu_tower_matches_open_clip_wgpu() {
    check_tower::<faceclip_core::backend::Wgpu>(
        "text_quickgelu",
        quickgelu_config(),
        &Default::default(),
    );
}

#[cfg(feature = "cuda")]
#[test]
fn quickgelu_tower_matches_open_clip_cuda() {
    check_tower::<faceclip_core::backend::Cuda>(
        "text_quickgelu",
        quickgelu_config(),
        &Default::default(),
    );
}

#[cfg(feature = "wgpu")]
#[test]
fn gelu_tower_matches_open_clip_wgpu() {
    check_tower::<faceclip_core::backend::Wgpu>("text_gelu", gelu_config(), &Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn gelu_tower_matches_open_clip_cuda() {
    check_tower::<faceclip_core::backend::Cuda>("text_gelu", gelu_config(), &Default::default());
}
