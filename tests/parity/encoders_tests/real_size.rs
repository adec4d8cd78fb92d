//! The released-size presets build and run one forward on random weights (shapes only).

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::weights::Weights;
use faceclip_encoders::{ClipTokenizer, FaceVit, FaceVitConfig, TextTower, TextTowerConfig};

type B = NdArray;

fn run_text_tower(config: TextTowerConfig) {
    let device = Default::default();
    let width = config.width;
    let start = Instant::now();
    let tower = TextTower::<B>::load(&Weights::random(&device), config).unwrap();
    let ids = ClipTokenizer::openclip()
        .unwrap()
        .tokenize_batch::<B>(&["Photo of a id person. a portrait"], &device)
        .unwrap();
    let out = tower.forward(ids, None).unwrap();
    assert_eq!(out.hidden.dims(), [1, 77, width]);
    assert_eq!(out.pooled.dims(), [1, width]);
    let values = faceclip_core::parity::to_vec(out.pooled);
    assert!(values.iter().all(|v| v.is_finite()));
    println!(
        "text tower w={width}: build + forward {:?}",
        start.elapsed()
    );
}

#[test]
fn vit_l_14_quickgelu_text_tower_real_size() {
    run_text_tower(TextTowerConfig::vit_l_14_quickgelu());
}

#[test]
fn vit_bigg_14_text_tower_real_size() {
    run_text_tower(TextTowerConfig::vit_bigg_14());
}

#[test]
fn arcface_face_vit_real_size() {
    let device = Default::default();
    let start = Instant::now();
    let vit =
        FaceVit::<B>::load(&Weights::random(&device), FaceVitConfig::arcface_vit_l()).unwrap();
    let crop = Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Uniform(0.0, 1.0), &device);
    let out = vit.forward(crop).unwrap();
    assert_eq!(out.patch_tokens.dims(), [1, 144, 768]);
    assert_eq!(out.identity.dims(), [1, 512]);
    assert_eq!(vit.pos_embed().dims(), [1, 144, 768]);
    assert!(faceclip_core::parity::to_vec(out.identity)
        .iter()
        .all(|v| v.is_finite()));
    println!("face ViT-L: build + forward {:?}", start.elapsed());
}
