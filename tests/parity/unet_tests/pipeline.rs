//! The denoising loop and VAE decode against diffusers' `StableDiffusionXLPipeline` (tiny UNet
//! and VAE, SDXL's default Euler scheduler, CFG 5.0, 4 steps, same embeddings and latents), and
//! the loop's bad input and cancellation.

use std::ops::ControlFlow;

use super::unet_model::load_unet;
use super::{fixture, tensor};
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::{psnr, to_vec};
use faceclip_core::schedule::{EulerDiscrete, NoiseSchedule};
use faceclip_core::weights::Checkpoint;
use faceclip_unet::{denoise, AutoencoderKl, Conditioning, DenoiseError, VaeConfig};

/// The bar for the whole pipeline in f32.
const MIN_PSNR_DB: f64 = 40.0;
/// The bound the GPU issue sets for the tiny pipeline in bf16 against the f32 reference.
#[cfg(feature = "cuda")]
const MIN_PSNR_DB_BF16: f64 = 30.0;

fn conditioning<B: Backend>(io: &Checkpoint, device: &B::Device) -> Conditioning<B> {
    Conditioning {
        positive: tensor(io, "prompt_embeds", device),
        positive_pooled: tensor(io, "pooled_prompt_embeds", device),
        negative: tensor(io, "negative_prompt_embeds", device),
        negative_pooled: tensor(io, "negative_pooled_prompt_embeds", device),
        // diffusers' default: original = target = the requested size, no crop.
        time_ids: [32.0, 24.0, 0.0, 0.0, 32.0, 24.0],
    }
}

fn sdxl_euler() -> EulerDiscrete {
    EulerDiscrete::new(NoiseSchedule::sdxl(), false)
}

fn check_pipeline<B: Backend>(device: &B::Device) -> f64 {
    let unet = load_unet::<B>("unet_config.json", "unet_weights.safetensors", device);
    let vae_config =
        VaeConfig::from_json(&std::fs::read_to_string(fixture("vae_config.json")).unwrap())
            .unwrap();
    let vb = crate::open_weights::<B>(&fixture("vae_weights.safetensors"), device);
    let vae = AutoencoderKl::load(&vb, vae_config).unwrap();
    let io = Checkpoint::open(fixture("pipeline_io.safetensors")).unwrap();
    let mut steps_seen = Vec::new();
    let latents = denoise(
        &unet,
        &mut sdxl_euler(),
        tensor(&io, "latents", device),
        &conditioning(&io, device),
        4,
        5.0,
        &mut |p| {
            steps_seen.push((p.step, p.timestep));
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    // Leading spacing with steps_offset 1: 751, 501, 251, 1.
    assert_eq!(
        steps_seen,
        vec![(1, 751.0), (2, 501.0), (3, 251.0), (4, 1.0)]
    );
    let image = vae.decode_scaled(latents).unwrap();
    // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1), channels last.
    let image = (image / 2.0 + 0.5).clamp(0.0, 1.0).permute([0, 2, 3, 1]);
    let (expected, shape) = io.read_f32("image").unwrap();
    assert_eq!(image.dims().to_vec(), shape);
    psnr(&to_vec(image), &expected)
}

#[test]
fn tiny_sdxl_pipeline_matches_diffusers_ndarray() {
    let db = check_pipeline::<NdArray>(&Default::default());
    assert!(db >= MIN_PSNR_DB, "PSNR {db:.1} dB < {MIN_PSNR_DB} dB");
    println!("tiny SDXL pipeline PSNR vs diffusers (ndarray): {db:.1} dB");
}

#[cfg(feature = "cuda")]
#[test]
fn tiny_sdxl_pipeline_matches_diffusers_cuda() {
    let db = check_pipeline::<faceclip_core::backend::Cuda>(&Default::default());
    assert!(db >= MIN_PSNR_DB, "PSNR {db:.1} dB < {MIN_PSNR_DB} dB");
    println!("tiny SDXL pipeline PSNR vs diffusers (cuda): {db:.1} dB");
}

/// The whole tiny pipeline with bf16 weights and activations against the f32 reference (in a
/// process of its own: the device's float type is the first backend's).
#[cfg(feature = "cuda")]
fn check_bf16_pipeline(label: &str) {
    let device = Default::default();
    crate::assert_own_float_dtype::<faceclip_core::backend::CudaBf16>(&device);
    let db = check_pipeline::<faceclip_core::backend::CudaBf16>(&device);
    assert!(
        db >= MIN_PSNR_DB_BF16,
        "PSNR {db:.1} dB < {MIN_PSNR_DB_BF16} dB"
    );
    println!("tiny SDXL pipeline PSNR vs diffusers ({label}): {db:.1} dB");
}

test_alone!(
    #[cfg(feature = "cuda")]
    tiny_sdxl_pipeline_matches_diffusers_cuda_bf16,
    {
        check_bf16_pipeline("cuda, bf16");
    }
);

test_alone!(
    /// With every convolution on cuDNN's graph API, none falling back to Burn's.
    #[cfg(feature = "cuda")]
    tiny_sdxl_pipeline_matches_diffusers_cuda_bf16_conv_graph,
    {
        use faceclip_core::backend::{set_cuda_convolution, CudaConvolution, NvidiaLibrary};
        set_cuda_convolution(CudaConvolution::CudnnGraph);
        crate::core_tests::on_library(NvidiaLibrary::Cudnn, 1, || {
            check_bf16_pipeline("cuda, bf16, cuDNN graph convolutions")
        });
    }
);

test_alone!(
    /// With the libraries' calls queued without waiting once a call of their plan has run
    /// (`CudaLibraryCalls::Queued`): the later steps' calls must be queued, and none may fall
    /// back or fail.
    #[cfg(feature = "cuda")]
    tiny_sdxl_pipeline_matches_diffusers_cuda_bf16_queued_calls,
    {
        use faceclip_core::backend::{
            library_stats, set_cuda_library_calls, CudaLibraryCalls, NvidiaLibrary,
        };
        use crate::core_tests::on_library;
        set_cuda_library_calls(CudaLibraryCalls::Queued);
        let libraries = [NvidiaLibrary::CublasLt, NvidiaLibrary::Cudnn];
        let before = libraries.map(library_stats);
        on_library(NvidiaLibrary::Cudnn, 1, || {
            on_library(NvidiaLibrary::CublasLt, 1, || {
                check_bf16_pipeline("cuda, bf16, library calls queued")
            })
        });
        for (library, before) in libraries.into_iter().zip(before) {
            let after = library_stats(library);
            assert!(after.queued > before.queued, "{}: {after:?}", library.name());
        }
    }
);

#[test]
fn denoise_refuses_bad_guidance_and_steps_and_can_be_cancelled() {
    let device = Default::default();
    let unet = load_unet::<NdArray>("unet_config.json", "unet_weights.safetensors", &device);
    let io = Checkpoint::open(fixture("pipeline_io.safetensors")).unwrap();
    let cond = conditioning::<NdArray>(&io, &device);
    let noise = || tensor::<NdArray, 4>(&io, "latents", &device);
    let mut keep_going = |_| ControlFlow::Continue(());
    for guidance in [f64::NAN, -1.0, f64::INFINITY] {
        let err = denoise(
            &unet,
            &mut sdxl_euler(),
            noise(),
            &cond,
            2,
            guidance,
            &mut keep_going,
        )
        .unwrap_err();
        assert!(err.to_string().contains("guidance"), "{err}");
    }
    assert!(matches!(
        denoise(
            &unet,
            &mut sdxl_euler(),
            noise(),
            &cond,
            0,
            5.0,
            &mut keep_going
        ),
        Err(DenoiseError::Input(_))
    ));
    // Embeddings for two images but noise for one.
    let two = Conditioning {
        positive: Tensor::cat(vec![cond.positive.clone(), cond.positive.clone()], 0),
        ..cond.clone()
    };
    assert!(denoise(
        &unet,
        &mut sdxl_euler(),
        noise(),
        &two,
        2,
        5.0,
        &mut keep_going
    )
    .is_err());
    // Cancel after the second of three steps.
    let mut stop_after_two = |p: faceclip_unet::StepProgress| {
        if p.step == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    match denoise(
        &unet,
        &mut sdxl_euler(),
        noise(),
        &cond,
        3,
        5.0,
        &mut stop_after_two,
    ) {
        Err(DenoiseError::Cancelled { step: 2, steps: 3 }) => {}
        other => panic!("expected a cancellation after step 2, got {other:?}"),
    }
}
