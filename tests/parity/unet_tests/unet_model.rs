//! `UNet2DConditionModel` against diffusers 0.33.1 (tiny SDXL-style and SD-1.5-style configs,
//! random weights with diffusers' key names), its config parser and bad input.

use super::{fixture, tensor};
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;
use faceclip_core::LoadError;
use faceclip_unet::{TextTimeCondition, UNet2DConditionModel, UNetConfig};

const TOLERANCE: f64 = 1e-4;

/// Loads a fixture UNet strictly and checks that every tensor of the file was used.
pub fn load_unet<B: Backend>(
    config: &str,
    weights: &str,
    device: &B::Device,
) -> UNet2DConditionModel<B> {
    let config = UNetConfig::from_json(&std::fs::read_to_string(fixture(config)).unwrap()).unwrap();
    let vb = crate::open_weights::<B>(&fixture(weights), device);
    let unet = UNet2DConditionModel::load(&vb, config).unwrap();
    let report = vb.finish().expect("every tensor of the file is used");
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );
    unet
}

fn time_ids(io: &Checkpoint, case: &str) -> Vec<[f32; 6]> {
    let (v, _) = io.read_f32(&format!("{case}.time_ids")).unwrap();
    v.chunks_exact(6).map(|r| r.try_into().unwrap()).collect()
}

fn check_sdxl_style<B: Backend>(device: &B::Device, cases: &[&str]) {
    let unet = load_unet::<B>("unet_config.json", "unet_weights.safetensors", device);
    let io = Checkpoint::open(fixture("unet_io.safetensors")).unwrap();
    for case in cases {
        let timestep = io.read_f32(&format!("{case}.timestep")).unwrap().0[0];
        let added = TextTimeCondition {
            text_embeds: tensor::<B, 2>(&io, &format!("{case}.text_embeds"), device),
            time_ids: time_ids(&io, case),
        };
        let out = unet
            .forward(
                tensor(&io, &format!("{case}.sample"), device),
                timestep,
                tensor(&io, &format!("{case}.context"), device),
                Some(&added),
            )
            .unwrap();
        assert_close(
            &format!("UNet {case}"),
            out,
            &io,
            &format!("{case}.out"),
            TOLERANCE,
        );
    }
}

#[test]
fn sdxl_style_unet_matches_diffusers_ndarray() {
    // "even": batch 2, 16×12, t = 901; "odd": 10×14 (nearest upsampling to the skip's size), t = 1.
    check_sdxl_style::<NdArray>(&Default::default(), &["even", "odd"]);
}

#[cfg(feature = "wgpu")]
#[test]
fn sdxl_style_unet_matches_diffusers_wgpu() {
    check_sdxl_style::<faceclip_core::backend::Wgpu>(&Default::default(), &["even"]);
}

/// A context is refused for a sample on another device than the one it was prepared on, with
/// an error naming both, before any work is queued. (A model moved there keeps its id; Burn
/// 0.21 cannot move tensors between two wgpu devices, so the sample comes from the host.)
#[cfg(feature = "wgpu")]
#[test]
fn prepared_context_is_refused_for_a_sample_on_another_device_wgpu() {
    use faceclip_core::backend::{Wgpu, WgpuDevice};
    let first = WgpuDevice::DefaultDevice;
    let second = WgpuDevice::Cpu;
    assert_ne!(first, second);
    let unet = load_unet::<Wgpu>("unet_config.json", "unet_weights.safetensors", &first);
    let io = Checkpoint::open(fixture("unet_io.safetensors")).unwrap();
    let timestep = io.read_f32("even.timestep").unwrap().0[0];
    let added = TextTimeCondition {
        text_embeds: tensor::<Wgpu, 2>(&io, "even.text_embeds", &first),
        time_ids: time_ids(&io, "even"),
    };
    let context = tensor::<Wgpu, 3>(&io, "even.context", &first);
    let prepared = unet.prepare(context, Some(&added)).unwrap();

    let elsewhere = tensor::<Wgpu, 4>(&io, "even.sample", &second);
    let err = unet
        .forward_prepared(elsewhere, timestep, &prepared)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the input's device"), "{err}");
    assert!(
        err.contains(&format!("{first:?}")) && err.contains(&format!("{second:?}")),
        "{err}"
    );

    let here = tensor::<Wgpu, 4>(&io, "even.sample", &first);
    let out = unet.forward_prepared(here, timestep, &prepared).unwrap();
    assert_close("UNet even, prepared", out, &io, "even.out", TOLERANCE);
}

#[cfg(feature = "cuda")]
#[test]
fn sdxl_style_unet_matches_diffusers_cuda() {
    check_sdxl_style::<faceclip_core::backend::Cuda>(&Default::default(), &["even", "odd"]);
}

#[test]
fn sd15_style_unet_matches_diffusers() {
    let device = Default::default();
    let unet = load_unet::<NdArray>(
        "unet_sd15_config.json",
        "unet_sd15_weights.safetensors",
        &device,
    );
    assert!(unet.config().text_time.is_none());
    assert!(!unet.config().use_linear_projection);
    let io = Checkpoint::open(fixture("unet_io.safetensors")).unwrap();
    let out = unet
        .forward(
            tensor(&io, "sd15.sample", &device),
            500.0,
            tensor(&io, "sd15.context", &device),
            None,
        )
        .unwrap();
    assert_close("UNet SD-1.5 style", out, &io, "sd15.out", TOLERANCE);
}

#[test]
fn config_json_reads_the_fixture_and_the_sdxl_preset_matches_diffusers_layout() {
    let config =
        UNetConfig::from_json(&std::fs::read_to_string(fixture("unet_config.json")).unwrap())
            .unwrap();
    assert_eq!(config.block_out_channels, vec![16, 32, 32]);
    assert_eq!(config.attention_heads, vec![2, 2, 4]);
    assert_eq!(config.transformer_layers_per_block, vec![1, 1, 2]);
    assert_eq!(config.text_time.unwrap().pooled_dim(), 24);
    // SDXL base 1.0's unet/config.json, as released.
    let sdxl = r#"{"_class_name": "UNet2DConditionModel", "act_fn": "silu",
        "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
        "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280], "center_input_sample": false,
        "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3,
        "conv_out_kernel": 3, "cross_attention_dim": 2048, "cross_attention_norm": null,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null,
        "encoder_hid_dim_type": null, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
        "layers_per_block": 2, "mid_block_only_cross_attention": null,
        "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null,
        "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
        "projection_class_embeddings_input_dim": 2816, "resnet_out_scale_factor": 1.0,
        "resnet_skip_time_act": false, "resnet_time_scale_shift": "default", "sample_size": 128,
        "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
        "time_embedding_type": "positional", "timestep_post_act": null,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "upcast_attention": null, "use_linear_projection": true}"#;
    assert_eq!(UNetConfig::from_json(sdxl).unwrap(), UNetConfig::sdxl());
}

#[test]
fn unsupported_or_inconsistent_configs_are_refused_with_the_key_named() {
    let cases = [
        (r#"{"class_embed_type": "timestep"}"#, "class_embed_type"),
        (
            r#"{"down_block_types": ["SimpleCrossAttnDownBlock2D"]}"#,
            "SimpleCrossAttnDownBlock2D",
        ),
        (
            r#"{"resnet_time_scale_shift": "scale_shift"}"#,
            "resnet_time_scale_shift",
        ),
        (
            r#"{"block_out_channels": [320, 640], "transformer_layers_per_block": [1, 2, 3]}"#,
            "transformer_layers_per_block",
        ),
        (r#"{"norm_num_groups": 7}"#, "norm_num_groups"),
        (r#"{"layers_per_block": "two"}"#, "layers_per_block"),
        (
            r#"{"addition_embed_type": "text_time", "addition_time_embed_dim": 256}"#,
            "projection_class_embeddings_input_dim",
        ),
        ("[1, 2]", "not a JSON object"),
    ];
    for (json, needle) in cases {
        let err = UNetConfig::from_json(json).unwrap_err();
        assert!(matches!(err, LoadError::Config(_)), "{json}: {err:?}");
        assert!(
            err.to_string().contains(needle),
            "{json}: `{err}` should name {needle}"
        );
    }
}

#[test]
fn a_checkpoint_with_the_wrong_cross_attention_width_is_refused() {
    // The fixture's context is 32 wide; a config that expects 48 must not load it.
    let json = std::fs::read_to_string(fixture("unet_config.json")).unwrap();
    let json = json.replace("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 48");
    let config = UNetConfig::from_json(&json).unwrap();
    let vb =
        crate::open_weights::<NdArray>(&fixture("unet_weights.safetensors"), &Default::default());
    let err = UNet2DConditionModel::load(&vb, config).unwrap_err();
    match &err {
        LoadError::ShapeMismatch {
            key,
            expected,
            found,
            ..
        } => {
            assert!(key.ends_with("attn2.to_k.weight"), "{key}");
            assert_eq!((expected[1], found[1]), (48, 32));
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    assert!(
        err.to_string().contains("unet_weights.safetensors"),
        "{err}"
    );
}

#[test]
fn bad_unet_inputs_are_typed_errors() {
    let device = Default::default();
    let unet = load_unet::<NdArray>("unet_config.json", "unet_weights.safetensors", &device);
    let sample = || Tensor::<NdArray, 4>::zeros([1, 4, 8, 8], &device);
    let context = |w: usize| Tensor::<NdArray, 3>::zeros([1, 7, w], &device);
    let added = |pooled: usize, rows: usize| TextTimeCondition {
        text_embeds: Tensor::<NdArray, 2>::zeros([1, pooled], &device),
        time_ids: vec![[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]; rows],
    };
    let ok = added(24, 1);
    assert!(unet.forward(sample(), 10.0, context(32), Some(&ok)).is_ok());
    let wrong_width = unet
        .forward(sample(), 10.0, context(48), Some(&ok))
        .unwrap_err();
    assert!(
        wrong_width.to_string().contains("encoder_hidden_states"),
        "{wrong_width}"
    );
    let three_channels = Tensor::<NdArray, 4>::zeros([1, 3, 8, 8], &device);
    assert!(unet
        .forward(three_channels, 10.0, context(32), Some(&ok))
        .is_err());
    assert!(unet
        .forward(sample(), f32::NAN, context(32), Some(&ok))
        .is_err());
    assert!(unet.forward(sample(), 10.0, context(32), None).is_err());
    assert!(unet
        .forward(sample(), 10.0, context(32), Some(&added(16, 1)))
        .is_err());
    assert!(unet
        .forward(sample(), 10.0, context(32), Some(&added(24, 2)))
        .is_err());
}

/// A context prepared once serves repeated steps, each giving diffusers' output, with keys,
/// values and the added embedding computed only once; a context prepared by another model or
/// for another batch size is refused.
#[test]
fn prepared_context_matches_diffusers_on_reuse_and_is_checked() {
    let device = Default::default();
    let unet = load_unet::<NdArray>("unet_config.json", "unet_weights.safetensors", &device);
    let io = Checkpoint::open(fixture("unet_io.safetensors")).unwrap();
    let case = "even";
    let added = TextTimeCondition {
        text_embeds: tensor::<NdArray, 2>(&io, &format!("{case}.text_embeds"), &device),
        time_ids: time_ids(&io, case),
    };
    let context = tensor::<NdArray, 3>(&io, &format!("{case}.context"), &device);
    let sample = tensor::<NdArray, 4>(&io, &format!("{case}.sample"), &device);
    let timestep = io.read_f32(&format!("{case}.timestep")).unwrap().0[0];
    let prepared = unet.prepare(context.clone(), Some(&added)).unwrap();
    assert_eq!(prepared.batch(), sample.dims()[0]);
    for step in 0..2 {
        let out = unet
            .forward_prepared(sample.clone(), timestep, &prepared)
            .unwrap();
        assert_close(
            &format!("UNet {case}, prepared, step {step}"),
            out,
            &io,
            &format!("{case}.out"),
            TOLERANCE,
        );
    }

    let other = load_unet::<NdArray>("unet_config.json", "unet_weights.safetensors", &device);
    assert_ne!(other.id(), unet.id());
    let err = other
        .forward_prepared(sample.clone(), timestep, &prepared)
        .unwrap_err();
    assert!(err.to_string().contains("prepared by model"), "{err}");
    let clone = unet.clone();
    assert!(clone
        .forward_prepared(sample.clone(), timestep, &prepared)
        .is_ok());

    let [b, c, h, w] = sample.dims();
    let more = Tensor::<NdArray, 4>::zeros([b + 1, c, h, w], &device);
    let err = unet
        .forward_prepared(more, timestep, &prepared)
        .unwrap_err();
    assert!(err.to_string().contains("prepared context"), "{err}");
    assert!(unet.forward_prepared(sample, f32::NAN, &prepared).is_err());
    let [_, tokens, width] = context.dims();
    let wrong_width = Tensor::<NdArray, 3>::zeros([b, tokens, width + 1], &device);
    let err = unet.prepare(wrong_width, Some(&added)).unwrap_err();
    assert!(err.to_string().contains("encoder_hidden_states"), "{err}");
    assert!(unet.prepare(context, None).is_err());
}
