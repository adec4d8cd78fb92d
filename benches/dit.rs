//! CPU time of one real-size FLUX.1-dev transformer step cut down to one double-stream and one
//! single-stream block (width 3072, 24 heads × 128; random weights): 1024 image tokens (a
//! 512×512 image) and 512 text tokens, batch 1.
//!
//! `cargo bench --bench dit` (results in `benches/RESULTS.md`).

use std::time::Duration;

use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::backend::NdArray;
use faceclip::core::weights::Weights;
use faceclip::dit::{image_ids, FluxConfig, FluxInput, FluxTransformer2DModel};

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    targets = flux_blocks
}
criterion_main!(benches);
