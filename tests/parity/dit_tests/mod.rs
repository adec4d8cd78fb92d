//! Integration tests of faceclip-dit against diffusers' `FluxTransformer2DModel` and
//! FluxPipeline's latent packing at a tiny configuration (fixtures from
//! `tools/parity/make_dit_fixtures.py`), and bad input.

use crate::reference as tensor;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::{assert_close, psnr};
use faceclip_core::weights::{Checkpoint, KeyRemap, LoadOptions, Weights};
use faceclip_core::LoadError;
use faceclip_dit::{
    image_ids, pack_latents, unpack_latents, FluxConfig, FluxInput, FluxTransformer2DModel,
};

const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-dit", name)
}

fn load<B: Backend>(device: &B::Device) -> FluxTransformer2DModel<B> {
    load_from(fixture("flux_weights.safetensors"), device)
}

fn load_from<B: Backend>(weights: String, device: &B::Device) -> FluxTransformer2DModel<B> {
    let config =
        FluxConfig::from_json(&std::fs::read_to_string(fixture("flux_config.json")).unwrap())
            .unwrap();
    let vb = crate::open_weights::<B>(weights, device);
    let model = FluxTransformer2DModel::load(&vb, config).unwrap();
    let report = vb.finish().expect("every tensor of the file is used");
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );
    model
}

fn input<B: Backend>(io: &Checkpoint, device: &B::Device) -> FluxInput<B> {
    FluxInput {
        image: pack_latents(tensor(io, "latents", device)).unwrap(),
        image_ids: image_ids(6, 8),
        context: tensor(io, "context", device),
        pooled: tensor(io, "pooled", device),
        timestep: 0.7,
        guidance: Some(3.5),
    }
}

fn check<B: Backend>(device: &B::Device) {
    check_model(load::<B>(device), device);
}

fn check_model<B: Backend>(model: FluxTransformer2DModel<B>, device: &B::Device) {
    let io = Checkpoint::open(fixture("flux_io.safetensors")).unwrap();
    let input = input::<B>(&io, device);
    assert_close("FLUX packing", input.image.clone(), &io, "packed", 1e-7);
    let (ids, _) = io.read_f32("image_ids").unwrap();
    let ours: Vec<f32> = input
        .image_ids
        .iter()
        .flatten()
        .map(|&v| v as f32)
        .collect();
    assert_eq!(ours, ids, "image ids");
    let out = model.forward(input).unwrap();
    assert_close("FLUX transformer", out.clone(), &io, "out", TOLERANCE);
    assert_close(
        "FLUX unpacking",
        unpack_latents(out, 6, 8).unwrap(),
        &io,
        "unpacked_out",
        TOLERANCE,
    );
}

#[test]
fn flux_transformer_matches_diffusers_ndarray() {
    check::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn flux_transformer_matches_diffusers_wgpu() {
    check::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn flux_transformer_matches_diffusers_cuda() {
    check::<faceclip_core::backend::Cuda>(&Default::default());
}

const SHARD_INDEX: &str = "flux_sharded/diffusion_pytorch_model.safetensors.index.json";

#[test]
fn sharded_diffusers_checkpoint_loads_through_its_index() {
    // Written by diffusers' save_pretrained in three shards: the layout of FLUX.1-dev's
    // transformer/ folder.
    let device = Default::default();
    check_model(load_from::<NdArray>(fixture(SHARD_INDEX), &device), &device);
}

#[test]
fn torch_archive_loads_like_faceclips_dit_pt() {
    let device = Default::default();
    check_model(
        load_from::<NdArray>(fixture("flux_dit.pt"), &device),
        &device,
    );
}

#[test]
fn sharded_checkpoint_with_a_missing_shard_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("faceclip-dit-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let index = dir.join("diffusion_pytorch_model.safetensors.index.json");
    std::fs::copy(fixture(SHARD_INDEX), &index).unwrap();
    for k in [1, 3] {
        let name = format!("diffusion_pytorch_model-0000{k}-of-00003.safetensors");
        std::fs::copy(fixture(&format!("flux_sharded/{name}")), dir.join(name)).unwrap();
    }
    let open_err = |why: &str| {
        Weights::<NdArray>::open(
            &index,
            &KeyRemap::new(),
            LoadOptions::default(),
            &Default::default(),
        )
        .err()
        .expect(why)
    };
    let err = open_err("a shard is missing");
    let message = err.to_string();
    match err {
        LoadError::MissingShards { index: at, shards } => {
            assert_eq!(at, index);
            assert_eq!(
                shards,
                ["diffusion_pytorch_model-00002-of-00003.safetensors"]
            );
        }
        other => panic!("expected MissingShards, got {other}"),
    }
    assert!(message.contains("00002-of-00003"), "{message}");

    // A shard that lacks a key the index places in it.
    let wrong = dir.join("diffusion_pytorch_model-00002-of-00003.safetensors");
    std::fs::copy(
        fixture("flux_sharded/diffusion_pytorch_model-00003-of-00003.safetensors"),
        &wrong,
    )
    .unwrap();
    let err = open_err("shard 2 holds shard 3's tensors");
    assert!(
        matches!(&err, LoadError::Corrupt { file, .. } if *file == wrong)
            || matches!(&err, LoadError::KeyCollision { .. }),
        "{err}"
    );

    // An index that is not JSON.
    std::fs::write(&index, "{ not json").unwrap();
    let err = open_err("garbage index");
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flux_dev_preset_matches_the_released_config() {
    // FLUX.1-dev's transformer/config.json, as released.
    let json = r#"{"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.30.0.dev0",
        "attention_head_dim": 128, "guidance_embeds": true, "in_channels": 64,
        "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 19,
        "num_single_layers": 38, "patch_size": 1, "pooled_projection_dim": 768,
        "axes_dims_rope": [16, 56, 56]}"#;
    assert_eq!(FluxConfig::from_json(json).unwrap(), FluxConfig::flux_dev());
    assert_eq!(FluxConfig::flux_dev().inner_dim(), 3072);
}

#[test]
fn bad_configs_checkpoints_and_inputs_are_typed_errors() {
    for (json, needle) in [
        (r#"{"patch_size": 2}"#, "patch_size"),
        (r#"{"axes_dims_rope": [16, 56]}"#, "axes_dims_rope"),
        (r#"{"attention_head_dim": 64}"#, "axes_dims_rope"),
    ] {
        let err = FluxConfig::from_json(json).unwrap_err();
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
    // A checkpoint whose joint attention width differs from the config's.
    let device = Default::default();
    let json = std::fs::read_to_string(fixture("flux_config.json")).unwrap();
    let wider = FluxConfig::from_json(
        &json.replace("\"joint_attention_dim\": 24", "\"joint_attention_dim\": 40"),
    )
    .unwrap();
    let vb = crate::open_weights::<NdArray>(&fixture("flux_weights.safetensors"), &device);
    match FluxTransformer2DModel::load(&vb, wider) {
        Err(LoadError::ShapeMismatch { key, .. }) => {
            assert!(key.starts_with("context_embedder"), "{key}")
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }

    let model = load::<NdArray>(&device);
    let io = Checkpoint::open(fixture("flux_io.safetensors")).unwrap();
    let good = input::<NdArray>(&io, &device);
    let cases = [
        FluxInput {
            context: Tensor::zeros([2, 5, 16], &device),
            ..good.clone()
        },
        FluxInput {
            pooled: Tensor::zeros([1, 12], &device),
            ..good.clone()
        },
        FluxInput {
            image_ids: image_ids(4, 4),
            ..good.clone()
        },
        FluxInput {
            guidance: None,
            ..good.clone()
        },
        FluxInput {
            timestep: f32::NAN,
            ..good.clone()
        },
    ];
    for case in cases {
        assert!(model.forward(case).is_err());
    }
    // Odd latent sizes cannot be packed 2×2.
    assert!(pack_latents(Tensor::<NdArray, 4>::zeros([1, 2, 5, 8], &device)).is_err());
    assert!(unpack_latents(good.image, 6, 6).is_err());
}

/// A context prepared once gives diffusers' output at every call; it is refused by another
/// model and for image tokens of another count or batch, and `prepare` checks its inputs.
#[test]
fn prepared_context_matches_diffusers_on_reuse_and_is_checked() {
    let device = Default::default();
    let model = load::<NdArray>(&device);
    let io = Checkpoint::open(fixture("flux_io.safetensors")).unwrap();
    let good = input::<NdArray>(&io, &device);
    let prepare = |input: &FluxInput<NdArray>| {
        model.prepare(
            input.context.clone(),
            input.pooled.clone(),
            input.guidance,
            &input.image_ids,
        )
    };
    let prepared = prepare(&good).unwrap();
    assert_eq!(
        (prepared.batch(), prepared.image_tokens()),
        (good.image.dims()[0], good.image_ids.len())
    );
    for call in 0..2 {
        let out = model
            .forward_prepared(good.image.clone(), good.timestep, &prepared)
            .unwrap();
        assert_close(
            &format!("FLUX transformer, prepared, call {call}"),
            out,
            &io,
            "out",
            TOLERANCE,
        );
    }

    let other = load::<NdArray>(&device);
    assert_ne!(other.id(), model.id());
    let err = other
        .forward_prepared(good.image.clone(), good.timestep, &prepared)
        .unwrap_err();
    assert!(err.to_string().contains("prepared by model"), "{err}");
    assert!(model
        .clone()
        .forward_prepared(good.image.clone(), good.timestep, &prepared)
        .is_ok());

    let [b, tokens, c] = good.image.dims();
    for dims in [[b + 1, tokens, c], [b, tokens - 4, c], [b, tokens, c + 1]] {
        let err = model
            .forward_prepared(Tensor::zeros(dims, &device), good.timestep, &prepared)
            .unwrap_err();
        assert!(err.to_string().contains("FLUX image tokens"), "{err}");
    }
    let err = model
        .forward_prepared(good.image.clone(), f32::INFINITY, &prepared)
        .unwrap_err();
    assert!(err.to_string().contains("FLUX timestep"), "{err}");
    let bad_prepare = [
        FluxInput {
            context: Tensor::zeros([1, 0, 24], &device),
            ..good.clone()
        },
        FluxInput {
            pooled: Tensor::zeros([1, 12], &device),
            ..good.clone()
        },
        FluxInput {
            guidance: Some(f32::NAN),
            ..good.clone()
        },
        FluxInput {
            image_ids: Vec::new(),
            ..good.clone()
        },
    ];
    for input in &bad_prepare {
        assert!(prepare(input).is_err(), "{:?}", input.context.dims());
    }
}

#[test]
fn tiny_flux_pipeline_matches_diffusers() {
    use faceclip_dit::{denoise_flux, FluxConditioning, FluxGuidance};
    use faceclip_unet::{AutoencoderKl, VaeConfig};
    use std::ops::ControlFlow;

    let device = Default::default();
    let model = load::<NdArray>(&device);
    let vae_config =
        VaeConfig::from_json(&std::fs::read_to_string(fixture("flux_vae_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (vae_config.latent_channels, vae_config.shift_factor),
        (2, 0.1159)
    );
    let vb = crate::open_weights::<NdArray>(&fixture("flux_vae_weights.safetensors"), &device);
    let vae = AutoencoderKl::load(&vb, vae_config).unwrap();
    vb.finish().unwrap();
    let io = Checkpoint::open(fixture("flux_pipeline_io.safetensors")).unwrap();
    let conditioning = FluxConditioning {
        positive: tensor(&io, "prompt_embeds", &device),
        positive_pooled: tensor(&io, "pooled_prompt_embeds", &device),
        negative: Some((
            tensor(&io, "negative_prompt_embeds", &device),
            tensor(&io, "negative_pooled_prompt_embeds", &device),
        )),
    };
    let guidance = FluxGuidance {
        true_cfg: 3.5,
        distilled: 1.0,
    };
    let mut steps = 0;
    let latents = denoise_flux(
        &model,
        tensor(&io, "latents", &device),
        [6, 8],
        &conditioning,
        4,
        guidance,
        &mut |p| {
            steps = p.step;
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(steps, 4);
    let image = vae
        .decode_scaled(unpack_latents(latents, 6, 8).unwrap())
        .unwrap();
    let image = (image / 2.0 + 0.5).clamp(0.0, 1.0).permute([0, 2, 3, 1]);
    let (expected, shape) = io.read_f32("image").unwrap();
    assert_eq!(image.dims().to_vec(), shape);
    let db = psnr(&faceclip_core::parity::to_vec(image), &expected);
    println!("tiny FLUX pipeline PSNR vs diffusers: {db:.1} dB");
    assert!(db >= 40.0, "PSNR {db:.1} dB < 40 dB");

    // Without negative embeddings true CFG cannot run; cancelling stops after the step asked.
    let no_negative = FluxConditioning {
        negative: None,
        ..conditioning.clone()
    };
    let noise = || tensor::<NdArray, 3>(&io, "latents", &device);
    assert!(denoise_flux(
        &model,
        noise(),
        [6, 8],
        &no_negative,
        2,
        guidance,
        &mut |_| ControlFlow::Continue(())
    )
    .is_err());
    assert!(denoise_flux(
        &model,
        noise(),
        [6, 6],
        &conditioning,
        2,
        guidance,
        &mut |_| ControlFlow::Continue(())
    )
    .is_err());
    let cancelled = denoise_flux(
        &model,
        noise(),
        [6, 8],
        &conditioning,
        3,
        guidance,
        &mut |_| ControlFlow::Break(()),
    );
    assert!(matches!(
        cancelled,
        Err(faceclip_unet::DenoiseError::Cancelled { step: 1, steps: 3 })
    ));
}
