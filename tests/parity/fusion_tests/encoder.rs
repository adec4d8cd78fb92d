//! The whole FaceCLIP-SDXL encoder against a reference composed in the fixture script from
//! open_clip, timm, torch.nn and transformers' GroundingDINO layers (tiny widths), loaded
//! strictly from a bf16 `torch.save` archive with the released key layout (`model.face_clip_*`).

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::Checkpoint;
use faceclip_fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip_fusion::{EncodeError, FaceClipConfig, FaceClipEncoder, FuserConfig, FusionKind};

use super::fixture;

const TOLERANCE: f64 = 1e-4;

fn tiny_config() -> FaceClipConfig {
    FaceClipConfig::tiny()
}

fn load<B: Backend>(device: &B::Device) -> FaceClipEncoder<B> {
    let (encoder, report) =
        FaceClipEncoder::from_checkpoint(fixture("encoder_weights.pt"), &tiny_config(), device)
            .unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );
    for ignorable in [
        "logit_scale",
        "text_projection",
        "mask_token",
        "num_batches_tracked",
        "enc_output_norm",
    ] {
        assert!(
            report.ignored.iter().any(|k| k.contains(ignorable)),
            "{ignorable} not in {:?}",
            report.ignored
        );
    }
    encoder
}

const PROMPT: &str = "a woman with short red hair, holding an id card";

fn check_encoder<B: Backend>(device: &B::Device) {
    let encoder = load::<B>(device);
    let io = Checkpoint::open(fixture("encoder_io.safetensors")).unwrap();

    let prompts = [PROMPT, SDXL_NEGATIVE_PROMPT];
    let tokenized = encoder.tokenize(&prompts, &[true, false]).unwrap();
    let (ids, masks) = (tokenized.ids, tokenized.id_mask);
    let expected_ids = io.read_i64("input_ids").unwrap().0;
    let ids: Vec<i64> = ids.into_iter().flatten().map(i64::from).collect();
    assert_eq!(ids, expected_ids, "prefixed tokenisation");
    let expected_mask: Vec<bool> = io
        .read_i64("id_mask")
        .unwrap()
        .0
        .into_iter()
        .map(|m| m != 0)
        .collect();
    assert_eq!(
        masks.into_iter().flatten().collect::<Vec<_>>(),
        expected_mask,
        "only the prefix's id is replaced"
    );

    let (images, s) = io.read_f32("images").unwrap();
    let images =
        Tensor::<B, 4>::from_data(TensorData::new(images, [s[0], s[1], s[2], s[3]]), device);
    let out = encoder.encode(images, &prompts, &[true, false]).unwrap();
    assert_close(
        "FaceCLIP encoder",
        out.prompt_embeds,
        &io,
        "prompt_embeds",
        TOLERANCE,
    );
    assert_close("FaceCLIP encoder", out.pooled, &io, "pooled", TOLERANCE);
}

#[test]
fn encoder_matches_reference_composition_ndarray() {
    check_encoder::<NdArray>(&Default::default());
}

// The encoder is a composition of parts each checked on wgpu (text tower, face ViT, fuser);
// the whole-encoder check runs on ndarray only, as on lavapipe it costs minutes of shader builds.

#[test]
fn mismatched_batches_are_rejected() {
    let device = Default::default();
    let encoder = load::<NdArray>(&device);
    let images = Tensor::<NdArray, 4>::zeros([2, 3, 112, 112], &device);
    let err = encoder
        .encode(images.clone(), &["one prompt"], &[true, true])
        .unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::BatchMismatch {
                faces: 2,
                prompts: 1,
                flags: 2
            }
        ),
        "{err}"
    );
    let empty = Tensor::<NdArray, 4>::zeros([0, 3, 112, 112], &device);
    assert!(matches!(
        encoder.encode(empty, &[], &[]),
        Err(EncodeError::BatchMismatch { .. })
    ));
    let grey = Tensor::<NdArray, 4>::zeros([1, 1, 112, 112], &device);
    assert!(matches!(
        encoder.encode(grey, &["x"], &[true]),
        Err(EncodeError::Input(_))
    ));
}

#[test]
fn fuser_width_must_match_the_tower() {
    let mut config = tiny_config();
    config.g.fuser = FusionKind::FaceClip(FuserConfig {
        layers: 2,
        ..FuserConfig::with_ffn(16, 32)
    });
    let err = FaceClipEncoder::<NdArray>::from_checkpoint(
        fixture("encoder_weights.pt"),
        &config,
        &Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("fuser width 16"), "{err}");
}

fn fixture_faces(device: &burn::tensor::Device<NdArray>) -> Tensor<NdArray, 4> {
    let io = Checkpoint::open(fixture("encoder_io.safetensors")).unwrap();
    let (images, s) = io.read_f32("images").unwrap();
    Tensor::from_data(TensorData::new(images, [s[0], s[1], s[2], s[3]]), device)
}

fn max_abs_diff<const D: usize>(a: Tensor<NdArray, D>, b: Tensor<NdArray, D>) -> f32 {
    faceclip_core::parity::to_vec((a - b).abs())
        .into_iter()
        .fold(0.0, f32::max)
}

#[test]
fn identity_strength_interpolates_between_text_and_face() {
    let device = Default::default();
    let encoder = load::<NdArray>(&device);
    let photo = fixture_faces(&device).narrow(0, 0, 1);
    let reference = encoder.encode(photo.clone(), &[PROMPT], &[true]).unwrap();
    let one = encoder.encode_person(photo.clone(), PROMPT, 1.0).unwrap();
    assert_eq!(
        max_abs_diff(one.prompt_embeds, reference.prompt_embeds.clone()),
        0.0,
        "s = 1 is the reference"
    );

    let text = encoder
        .encode(photo.zeros_like(), &[PROMPT], &[false])
        .unwrap();
    let zero = encoder.encode_person(photo.clone(), PROMPT, 0.0).unwrap();
    assert!(
        max_abs_diff(zero.prompt_embeds, text.prompt_embeds.clone()) < 1e-6,
        "s = 0 is the face-free prompt"
    );
    let half = encoder.encode_person(photo.clone(), PROMPT, 0.5).unwrap();
    let midpoint = (text.prompt_embeds + reference.prompt_embeds) / 2.0;
    assert!(max_abs_diff(half.prompt_embeds, midpoint) < 1e-5);
    assert_eq!(half.pooled.dims(), [1, 24]);

    for bad in [-0.1, 2.5, f64::NAN] {
        assert!(
            matches!(
                encoder.encode_person(photo.clone(), PROMPT, bad),
                Err(EncodeError::Strength(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn several_photos_of_one_person() {
    let device = Default::default();
    let encoder = load::<NdArray>(&device);
    let photo = fixture_faces(&device).narrow(0, 0, 1);
    let twice = Tensor::cat(vec![photo.clone(), photo.clone()], 0);
    let single = encoder.encode_person(photo.clone(), PROMPT, 1.0).unwrap();
    let doubled = encoder.encode_person(twice, PROMPT, 1.0).unwrap();
    assert!(
        max_abs_diff(single.prompt_embeds.clone(), doubled.prompt_embeds) < 1e-5,
        "the mean of one face twice is that face"
    );
    let other = fixture_faces(&device).narrow(0, 0, 1).flip([3]);
    let mixed = encoder
        .encode_person(Tensor::cat(vec![photo, other], 0), PROMPT, 1.0)
        .unwrap();
    assert!(
        max_abs_diff(single.prompt_embeds, mixed.prompt_embeds) > 1e-4,
        "a second face changes the identity"
    );
    let none = Tensor::<NdArray, 4>::zeros([0, 3, 112, 112], &device);
    assert!(encoder.encode_person(none, PROMPT, 1.0).is_err());
}

#[test]
fn negative_branch_is_cached_per_prompt() {
    let device = Default::default();
    let encoder = load::<NdArray>(&device);
    let first = encoder
        .encode_negative(SDXL_NEGATIVE_PROMPT, &device)
        .unwrap();
    let direct = encoder
        .encode(
            Tensor::zeros([1, 3, 112, 112], &device),
            &[SDXL_NEGATIVE_PROMPT],
            &[false],
        )
        .unwrap();
    assert_eq!(
        max_abs_diff(first.prompt_embeds.clone(), direct.prompt_embeds),
        0.0
    );
    let again = encoder
        .encode_negative(SDXL_NEGATIVE_PROMPT, &device)
        .unwrap();
    assert_eq!(
        max_abs_diff(first.prompt_embeds.clone(), again.prompt_embeds),
        0.0
    );
    let other = encoder.encode_negative("blurry", &device).unwrap();
    assert!(max_abs_diff(first.prompt_embeds, other.prompt_embeds) > 0.0);
}
