//! CPU time of FLUX generation pieces: one real-size FLUX.1-dev transformer step cut down to one
//! double-stream and one single-stream block (width 3072, 24 heads × 128; random weights), 1024
//! image tokens (a 512×512 image) and 512 text tokens, batch 1; and the small random-weight
//! FaceT5-FLUX pipeline of `generate --model flux` end to end (align, FaceT5 + CLIP encode, 10
//! steps with true CFG, decode at 256×256) on ndarray and, when compiled in, wgpu.
//!
//! `cargo bench --bench dit [--features wgpu]` (results in `benches/RESULTS.md`).

#[path = "common/tiny_pipeline.rs"]
mod tiny_pipeline;

use std::time::Duration;

use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::backend::NdArray;
use faceclip::core::weights::Weights;
use faceclip::dit::{image_ids, FluxConfig, FluxInput, FluxTransformer2DModel};
use faceclip::pipeline::ModelKind;
use tiny_pipeline::bench_tiny_pipeline;

fn flux_blocks(c: &mut Criterion) {
    let device = Default::default();
    let config = FluxConfig {
        num_layers: 1,
        num_single_layers: 1,
        ..FluxConfig::flux_dev()
    };
    let model = FluxTransformer2DModel::<NdArray>::load(&Weights::random(&device), config)
        .expect("FLUX blocks with random weights");
    let normal = Distribution::Normal(0.0, 1.0);
    let input = FluxInput {
        image: Tensor::random([1, 32 * 32, 64], normal, &device),
        image_ids: image_ids(64, 64),
        context: Tensor::random([1, 512, 4096], normal, &device),
        pooled: Tensor::random([1, 768], normal, &device),
        timestep: 0.9,
        guidance: Some(1.0),
    };
    c.bench_function("flux_double_plus_single_block_512_ndarray", |b| {
        b.iter(|| model.forward(input.clone()).expect("forward").into_data())
    });
}

fn pipelines(c: &mut Criterion) {
    let flux = ModelKind::FaceT5Flux;
    bench_tiny_pipeline::<NdArray>(c, "tiny_flux_pipeline_256_10_steps_ndarray", flux);
    #[cfg(feature = "wgpu")]
    bench_tiny_pipeline::<faceclip::backend::Wgpu>(c, "tiny_flux_pipeline_256_10_steps_wgpu", flux);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    targets = flux_blocks, pipelines
}
criterion_main!(benches);
