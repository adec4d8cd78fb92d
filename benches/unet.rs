//! CPU time of SDXL generation pieces: one step of the real-size SDXL UNet (2.57 B parameters,
//! random weights) at 512×512, batch 1; and the small random-weight pipeline of the `generate`
//! example end to end (align, encode, 10 steps with guidance, decode) on ndarray and, when
//! compiled in, wgpu.
//!
//! `cargo bench --bench unet [--features wgpu]` (results in `benches/RESULTS.md`). The PyTorch
//! side of the UNet step: `python benches/gpu/torch_ref.py --device cpu --dtype f32 --only
//! unet_step --unet 1x64x64`.

#[path = "common/tiny_pipeline.rs"]
mod tiny_pipeline;

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::backend::NdArray;
use faceclip::core::weights::Weights;
use faceclip::pipeline::ModelKind;
use faceclip::unet::{TextTimeCondition, UNet2DConditionModel, UNetConfig};
use tiny_pipeline::bench_tiny_pipeline;

fn unet_step(c: &mut Criterion) {
    let device = Default::default();
    let unet = UNet2DConditionModel::<NdArray>::load(&Weights::random(&device), UNetConfig::sdxl())
        .expect("SDXL UNet with random weights");
    // diffusers' SDXL base UNet has 2,567,463,684 parameters.
    println!("SDXL UNet parameters: {}", unet.num_params());
    let normal = Distribution::Normal(0.0, 1.0);
    let sample = Tensor::<NdArray, 4>::random([1, 4, 64, 64], normal, &device);
    let context = Tensor::<NdArray, 3>::random([1, 77, 2048], normal, &device);
    let added = TextTimeCondition {
        text_embeds: Tensor::random([1, 1280], normal, &device),
        time_ids: vec![[512.0, 512.0, 0.0, 0.0, 512.0, 512.0]],
    };
    c.bench_function("sdxl_unet_step_512_ndarray", |b| {
        b.iter(|| {
            unet.forward(sample.clone(), 981.0, context.clone(), Some(&added))
                .expect("step")
                .into_data()
        })
    });
}

fn pipelines(c: &mut Criterion) {
    let sdxl = ModelKind::FaceClipSdxl;
    bench_tiny_pipeline::<NdArray>(c, "tiny_pipeline_256_10_steps_ndarray", sdxl);
    #[cfg(feature = "wgpu")]
    bench_tiny_pipeline::<faceclip::backend::Wgpu>(c, "tiny_pipeline_256_10_steps_wgpu", sdxl);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    targets = unet_step, pipelines
}
criterion_main!(benches);
