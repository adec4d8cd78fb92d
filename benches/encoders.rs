//! CPU (ndarray) timings of one real-size forward: the ArcFace face ViT-L on a 448² crop and
//! the OpenCLIP text towers (CLIP-L, bigG) on one 77-token prompt, random weights.
//!
//! `cargo bench --bench encoders` (results recorded in `benches/RESULTS.md`).

use std::time::Duration;

use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::backend::NdArray;
use faceclip::core::weights::Weights;
use faceclip::encoders::{ClipTokenizer, FaceVit, FaceVitConfig, TextTower, TextTowerConfig};

type B = NdArray;

fn face_vit(c: &mut Criterion) {
    let device = Default::default();
    let vit = FaceVit::<B>::load(&Weights::random(&device), FaceVitConfig::arcface_vit_l())
        .expect("face ViT");
    let crop = Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Uniform(0.0, 1.0), &device);
    c.bench_function("face_vit_l_448_ndarray", |b| {
        b.iter(|| {
            vit.forward(crop.clone())
                .expect("forward")
                .identity
                .into_data()
        })
    });
}

fn text_towers(c: &mut Criterion) {
    let device = Default::default();
    let ids = ClipTokenizer::openclip()
        .and_then(|t| {
            t.tokenize_batch::<B>(
                &["Photo of a id person. A woman in a denim shirt."],
                &device,
            )
        })
        .expect("tokenize");
    for (name, config) in [
        ("clip_l_text_ndarray", TextTowerConfig::vit_l_14_quickgelu()),
        ("bigg_text_ndarray", TextTowerConfig::vit_bigg_14()),
    ] {
        let tower = TextTower::<B>::load(&Weights::random(&device), config).expect("tower");
        c.bench_function(name, |b| {
            b.iter(|| {
                tower
                    .forward(ids.clone(), None)
                    .expect("forward")
                    .pooled
                    .into_data()
            })
        });
    }
}

criterion_group! {
    name = encoders;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(3)).measurement_time(Duration::from_secs(30));
    targets = face_vit, text_towers
}
criterion_main!(encoders);
