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

#[test]
fn released_encoder_matches_spec_key_list_and_runs() {
    let device = Default::default();
    let weights = Weights::<NdArray>::random(&device);
    let encoder = FaceClipEncoder::load(&weights, &FaceClipConfig::sdxl()).unwrap();

    let requested: Keys = weights.requested().into_iter().collect();
    let mut expected = Keys::new();
    spec_branch(&mut expected, "face_clip_l", 768, 12);
    spec_branch(&mut expected, "face_clip_g", 1280, 32);
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
    for (key, shape) in &expected {
        assert_eq!(&requested[key], shape, "{key}");
    }
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
