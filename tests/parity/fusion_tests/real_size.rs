//! The released-size encoder asks for exactly the checkpoint keys and shapes listed in the spec
//! (`faceclip-architecture.md` §8), and runs one forward (shapes only, random weights).

use std::collections::BTreeMap;

use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::weights::Weights;
use faceclip_fusion::{FaceClipConfig, FaceClipEncoder};

type Keys = BTreeMap<String, Vec<usize>>;

fn add(keys: &mut Keys, key: String, shape: &[usize]) {
    keys.insert(key, shape.to_vec());
}

/// `name.weight [out, in]` and `name.bias [out]`.
fn linear(keys: &mut Keys, name: &str, d_out: usize, d_in: usize) {
    add(keys, format!("{name}.weight"), &[d_out, d_in]);
    add(keys, format!("{name}.bias"), &[d_out]);
}

fn norm(keys: &mut Keys, name: &str, d: usize) {
    add(keys, format!("{name}.weight"), &[d]);
    add(keys, format!("{name}.bias"), &[d]);
}

/// Spec §8, for branch prefix `p` and width `w`, without the training-only tensors
/// (`text_projection`, `logit_scale`, `logit_bias`, `mask_token`, `num_batches_tracked`, `enc_output*`).
fn spec_branch(keys: &mut Keys, p: &str, w: usize, text_layers: usize) {
    add(keys, format!("{p}.token_embedding.weight"), &[49408, w]);
    add(keys, format!("{p}.positional_embedding"), &[77, w]);
    for i in 0..text_layers {
        let b = format!("{p}.transformer.resblocks.{i}");
        norm(keys, &format!("{b}.ln_1"), w);
        norm(keys, &format!("{b}.ln_2"), w);
        add(keys, format!("{b}.attn.in_proj_weight"), &[3 * w, w]);
        add(keys, format!("{b}.attn.in_proj_bias"), &[3 * w]);
        linear(keys, &format!("{b}.attn.out_proj"), w, w);
        linear(keys, &format!("{b}.mlp.c_fc"), 4 * w, w);
        linear(keys, &format!("{b}.mlp.c_proj"), w, 4 * w);
    }
    norm(keys, &format!("{p}.ln_final"), w);

    let f = format!("{p}.face_encoder");
    add(
        keys,
        format!("{f}.patch_embed.proj.weight"),
        &[768, 3, 9, 9],
    );
    add(keys, format!("{f}.patch_embed.proj.bias"), &[768]);
    add(keys, format!("{f}.pos_embed"), &[1, 144, 768]);
    for i in 0..24 {
        let b = format!("{f}.blocks.{i}");
        norm(keys, &format!("{b}.norm1"), 768);
        norm(keys, &format!("{b}.norm2"), 768);
        add(keys, format!("{b}.attn.qkv.weight"), &[2304, 768]);
        linear(keys, &format!("{b}.attn.proj"), 768, 768);
        linear(keys, &format!("{b}.mlp.fc1"), 3072, 768);
        linear(keys, &format!("{b}.mlp.fc2"), 768, 3072);
    }
    norm(keys, &format!("{f}.norm"), 768);
    add(keys, format!("{f}.feature.0.weight"), &[768, 110592]);
    add(keys, format!("{f}.feature.2.weight"), &[512, 768]);
    for (i, d) in [(1, 768), (3, 512)] {
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            add(keys, format!("{f}.feature.{i}.{stat}"), &[d]);
        }
    }

    linear(keys, &format!("{p}.proj1"), w, 512);
    linear(keys, &format!("{p}.face_patch_proj"), w, 768);
    linear(keys, &format!("{p}.face_pos_proj"), w, 768);
    linear(keys, &format!("{p}.text_embed_proj"), w, w);
    linear(keys, &format!("{p}.text_pos_proj"), w, w);

    for i in 0..6 {
        let l = format!("{p}.fuser.encoder.layers.{i}");
        linear(keys, &format!("{l}.self_attn.sampling_offsets"), 64, w);
        linear(keys, &format!("{l}.self_attn.attention_weights"), 32, w);
        linear(keys, &format!("{l}.self_attn.value_proj"), w, w);
        linear(keys, &format!("{l}.self_attn.output_proj"), w, w);
        norm(keys, &format!("{l}.norm1"), w);
        linear(keys, &format!("{l}.linear1"), 2048, w);
        linear(keys, &format!("{l}.linear2"), w, 2048);
        norm(keys, &format!("{l}.norm2"), w);

        let t = format!("{p}.fuser.encoder.text_layers.{i}");
        add(keys, format!("{t}.self_attn.in_proj_weight"), &[3 * w, w]);
        add(keys, format!("{t}.self_attn.in_proj_bias"), &[3 * w]);
        linear(keys, &format!("{t}.self_attn.out_proj"), w, w);
        linear(keys, &format!("{t}.linear1"), 1024, w);
        linear(keys, &format!("{t}.linear2"), w, 1024);
        norm(keys, &format!("{t}.norm1"), w);
        norm(keys, &format!("{t}.norm2"), w);

        let u = format!("{p}.fuser.encoder.fusion_layers.{i}");
        norm(keys, &format!("{u}.layer_norm_v"), w);
        norm(keys, &format!("{u}.layer_norm_l"), w);
        add(keys, format!("{u}.gamma_v"), &[w]);
        add(keys, format!("{u}.gamma_l"), &[w]);
        for name in ["v_proj", "l_proj", "values_v_proj", "values_l_proj"] {
            linear(keys, &format!("{u}.attn.{name}"), 1024, w);
        }
        linear(keys, &format!("{u}.attn.out_v_proj"), w, 1024);
        linear(keys, &format!("{u}.attn.out_l_proj"), w, 1024);
    }
}

/// The model built from `weights` asked for exactly the keys and shapes of `expected`.
fn assert_requests_exactly(weights: &Weights<NdArray>, expected: &Keys) {
    let requested: Keys = weights.requested().into_iter().collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !requested.contains_key(*k))
        .collect();
    let extra: Vec<_> = requested
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not requested: {missing:?}\nnot in spec: {extra:?}"
    );
    for (key, shape) in expected {
        assert_eq!(&requested[key], shape, "{key}");
    }
}

#[test]
fn released_encoder_matches_spec_key_list_and_runs() {
    let device = Default::default();
    let weights = Weights::<NdArray>::random(&device);
    let encoder = FaceClipEncoder::load(&weights, &FaceClipConfig::sdxl()).unwrap();

    let mut expected = Keys::new();
    spec_branch(&mut expected, "face_clip_l", 768, 12);
    spec_branch(&mut expected, "face_clip_g", 1280, 32);
    assert_requests_exactly(&weights, &expected);
    let params: usize = expected.values().map(|s| s.iter().product::<usize>()).sum();
    // Spec §9: 1.573 B in total, of which 4.2 M are training-only tensors not built here.
    assert!(
        (1_560_000_000..1_574_000_000).contains(&params),
        "{params} parameters"
    );

    let face =
        Tensor::<NdArray, 4>::random([1, 3, 448, 448], Distribution::Uniform(0.0, 1.0), &device);
    let out = encoder
        .encode(face, &["a portrait in soft light"], &[true])
        .unwrap();
    assert_eq!(out.prompt_embeds.dims(), [1, 77, 2048]);
    assert_eq!(out.pooled.dims(), [1, 1280]);
}

/// Spec §8's FaceT5 keys (`encoder_2.` prefix) for `t5_blocks` T5 blocks and `fuser_layers`
/// fuser layers, without `face_pos_proj` and `enc_output*` (never read), plus FLUX's CLIP-L
/// text model in the Hugging Face layout (`encoder_1.text_model.`).
fn spec_facet5(keys: &mut Keys, t5_blocks: usize, fuser_layers: usize) {
    let c = "encoder_1.text_model";
    add(
        keys,
        format!("{c}.embeddings.token_embedding.weight"),
        &[49408, 768],
    );
    add(
        keys,
        format!("{c}.embeddings.position_embedding.weight"),
        &[77, 768],
    );
    for i in 0..12 {
        let b = format!("{c}.encoder.layers.{i}");
        norm(keys, &format!("{b}.layer_norm1"), 768);
        norm(keys, &format!("{b}.layer_norm2"), 768);
        for name in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            linear(keys, &format!("{b}.self_attn.{name}"), 768, 768);
        }
        linear(keys, &format!("{b}.mlp.fc1"), 3072, 768);
        linear(keys, &format!("{b}.mlp.fc2"), 768, 3072);
    }
    norm(keys, &format!("{c}.final_layer_norm"), 768);

    let p = "encoder_2";
    // The face ViT is the SDXL branch's (spec §7.2): reuse its key list and keep those keys.
    let mut branch = Keys::new();
    spec_branch(&mut branch, p, 4096, 0);
    keys.extend(
        branch
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{p}.face_encoder."))),
    );
    let t = format!("{p}.t5_encoder");
    add(keys, format!("{t}.embed_tokens.weight"), &[32128, 4096]);
    for k in 0..t5_blocks {
        let a = format!("{t}.block.{k}.self_attention_layer");
        for name in ["Wq", "Wk", "Wv", "o"] {
            add(
                keys,
                format!("{a}.self_attention.{name}.weight"),
                &[4096, 4096],
            );
        }
        add(keys, format!("{a}.layer_norm.weight"), &[4096]);
        let f = format!("{t}.block.{k}.ff_layer");
        add(keys, format!("{f}.act.wi_0.weight"), &[10240, 4096]);
        add(keys, format!("{f}.act.wi_1.weight"), &[10240, 4096]);
        add(keys, format!("{f}.wo.weight"), &[4096, 10240]);
        add(keys, format!("{f}.layer_norm.weight"), &[4096]);
    }
    add(
        keys,
        format!("{t}.block.0.self_attention_layer.self_attention.pe_encoding.relative_attention_bias.weight"),
        &[32, 64],
    );
    add(keys, format!("{t}.final_layer_norm.weight"), &[4096]);
    linear(keys, &format!("{p}.face_patch_proj"), 4096, 768);
    add(keys, format!("{p}.positional_embedding"), &[1, 512, 4096]);
    for i in 0..fuser_layers {
        let l = format!("{p}.fuser.encoder.layers.{i}");
        add(
            keys,
            format!("{l}.self_attn.in_proj_weight"),
            &[12288, 4096],
        );
        add(keys, format!("{l}.self_attn.in_proj_bias"), &[12288]);
        linear(keys, &format!("{l}.self_attn.out_proj"), 4096, 4096);
        linear(keys, &format!("{l}.linear1"), 2048, 4096);
        linear(keys, &format!("{l}.linear2"), 4096, 2048);
        norm(keys, &format!("{l}.norm1"), 4096);
        norm(keys, &format!("{l}.norm2"), 4096);

        let t = format!("{p}.fuser.encoder.text_layers.{i}");
        add(
            keys,
            format!("{t}.self_attn.in_proj_weight"),
            &[12288, 4096],
        );
        add(keys, format!("{t}.self_attn.in_proj_bias"), &[12288]);
        linear(keys, &format!("{t}.self_attn.out_proj"), 4096, 4096);
        linear(keys, &format!("{t}.linear1"), 1024, 4096);
        linear(keys, &format!("{t}.linear2"), 4096, 1024);
        norm(keys, &format!("{t}.norm1"), 4096);
        norm(keys, &format!("{t}.norm2"), 4096);

        let u = format!("{p}.fuser.encoder.fusion_layers.{i}");
        norm(keys, &format!("{u}.layer_norm_v"), 4096);
        norm(keys, &format!("{u}.layer_norm_l"), 4096);
        add(keys, format!("{u}.gamma_v"), &[4096]);
        add(keys, format!("{u}.gamma_l"), &[4096]);
        for name in ["v_proj", "l_proj", "values_v_proj", "values_l_proj"] {
            linear(keys, &format!("{u}.attn.{name}"), 1024, 4096);
        }
        linear(keys, &format!("{u}.attn.out_v_proj"), 4096, 1024);
        linear(keys, &format!("{u}.attn.out_l_proj"), 4096, 1024);
    }
}

#[test]
fn released_facet5_sizes_match_spec_keys() {
    use faceclip_encoders::T5Tokenizer;
    use faceclip_fusion::{FaceT5FluxConfig, FaceT5FluxEncoder};

    // One T5 block and one fuser layer at the released widths (the whole encoder is 6.3 B
    // parameters, 25 GB in f32): every key name and shape of spec §8 for those layers.
    let mut config = FaceT5FluxConfig::released();
    config.facet5.t5.layers = 1;
    config.facet5.fuser.layers = 1;
    let device = Default::default();
    let weights = Weights::<NdArray>::random(&device);
    FaceT5FluxEncoder::load(&weights, &config, T5Tokenizer::tiny().unwrap()).unwrap();
    let mut expected = Keys::new();
    spec_facet5(&mut expected, 1, 1);
    assert_requests_exactly(&weights, &expected);
    // Spec §9: per fuser layer, image 83.9 M, text 75.5 M, bi-attention 25.2 M parameters.
    let count = |part: &str| -> usize {
        expected
            .iter()
            .filter(|(k, _)| k.contains(part))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    };
    for (part, millions) in [
        ("fuser.encoder.layers.0.", 83.9),
        ("fuser.encoder.text_layers.0.", 75.5),
        ("fuser.encoder.fusion_layers.0.", 25.2),
    ] {
        let m = count(part) as f64 / 1e6;
        assert!((m - millions).abs() < 0.05, "{part}: {m:.2} M");
    }
}
