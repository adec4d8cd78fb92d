//! The random-weight demo pipeline of the `generate` example, end to end (align, encode, 10
//! steps with guidance, decode at 256×256), shared by the `unet` and `dit` benches.

use std::ops::ControlFlow;

use burn::tensor::backend::Backend;
use criterion::Criterion;
use faceclip::pipeline::{FaceInput, ModelKind, Pipeline};

/// Benchmarks one generation of the tiny `model` pipeline on backend `B` as `name`.
pub fn bench_tiny_pipeline<B: Backend>(c: &mut Criterion, name: &str, model: ModelKind) {
    let device = Default::default();
    let pipeline = match model {
        ModelKind::FaceClipSdxl => Pipeline::<B>::random_tiny(&device, 7),
        ModelKind::FaceT5Flux => Pipeline::<B>::random_tiny_flux(&device, 7),
    }
    .expect("tiny pipeline");
    let photo =
        faceclip::align::load_photo(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut.png"))
            .expect("demo photo");
    let mut request = pipeline.request(FaceInput::Photo(photo), "a person in sunlight");
    request.steps = 10;
    request.width = 256;
    request.height = 256;
    c.bench_function(name, |b| {
        b.iter(|| {
            pipeline
                .generate(&request, |_| ControlFlow::Continue(()))
                .expect("generate")
        })
    });
}
