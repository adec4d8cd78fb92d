//! CPU (ndarray) time of the complete FaceCLIP-SDXL encoder at the released size (1.57 B
//! parameters, random weights): one positive encoding (face + prompt) and the positive plus
//! negative pair a generation needs.
//!
//! `cargo bench --bench encoder` (results recorded in `benches/RESULTS.md`).

use std::time::Duration;

use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::backend::NdArray;
use faceclip::core::weights::Weights;
use faceclip::fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip::fusion::{FaceClipConfig, FaceClipEncoder};

type B = NdArray;

const PROMPT: &str = "a woman with short red hair, in sunlight";

fn encoder(c: &mut Criterion) {
    let device = Default::default();
    let encoder = FaceClipEncoder::<B>::load(&Weights::random(&device), &FaceClipConfig::sdxl())
        .expect("encoder");
    let face = Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Uniform(0.0, 1.0), &device);
    c.bench_function("faceclip_encoder_positive_ndarray", |b| {
        b.iter(|| {
            encoder
                .encode(face.clone(), &[PROMPT], &[true])
                .expect("encode")
                .pooled
                .into_data()
        })
    });
    c.bench_function("faceclip_encoder_positive_and_negative_ndarray", |b| {
        b.iter(|| {
            let positive = encoder
                .encode(face.clone(), &[PROMPT], &[true])
                .expect("encode");
            let negative = encoder
                .encode(face.zeros_like(), &[SDXL_NEGATIVE_PROMPT], &[false])
                .expect("encode");
            (positive.pooled.into_data(), negative.pooled.into_data())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(60));
    targets = encoder
}
criterion_main!(benches);
