//! Unit tests of the pipeline on the random tiny configurations.

use super::*;
use crate::backend::NdArray;
use faceclip_unet::VaeTiling;

type B = NdArray;

fn astronaut() -> RgbImage {
    faceclip_align::load_photo(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut.png"))
        .expect("demo photo")
}

fn tiny() -> Pipeline<B> {
    Pipeline::<B>::random_tiny(&Default::default(), 7).expect("tiny pipeline")
}

fn small_request(face: FaceInput) -> GenerateRequest {
    GenerateRequest {
        steps: 3,
        width: 48,
        height: 64,
        ..GenerateRequest::new(face, "a person in sunlight")
    }
}

fn go(pipeline: &Pipeline<B>, request: &GenerateRequest) -> Result<Generated, GenerateError> {
    pipeline.generate(request, |_| ControlFlow::Continue(()))
}

/// Generates, recording every stage reported.
fn go_recording(pipeline: &Pipeline<B>, request: &GenerateRequest) -> (Generated, Vec<Stage>) {
    let mut stages = Vec::new();
    let generated = pipeline
        .generate(request, |s| {
            stages.push(s);
            ControlFlow::Continue(())
        })
        .unwrap();
    (generated, stages)
}

/// Each request fails with a request error naming its field.
fn assert_request_errors(pipeline: &Pipeline<B>, cases: Vec<(&str, GenerateRequest)>) {
    for (field, request) in cases {
        match go(pipeline, &request) {
            Err(GenerateError::Request { field: f, reason }) => assert_eq!(f, field, "{reason}"),
            other => panic!("{field}: expected a request error, got {other:?}"),
        }
    }
}

#[test]
fn generates_deterministic_images_of_the_requested_size() {
    let pipeline = tiny();
    let mut request = small_request(FaceInput::Photo(astronaut()));
    request.images = 2;
    let (first, stages) = go_recording(&pipeline, &request);
    assert_eq!(first.images.len(), 2);
    assert!(first.images.iter().all(|i| i.dimensions() == (48, 64)));
    assert_eq!(first.reference_faces.len(), 1);
    assert_eq!(first.reference_faces[0].dimensions(), (448, 448));
    assert_eq!(stages[..2], [Stage::Align, Stage::Encode]);
    assert_eq!(stages[2], Stage::Denoise { step: 1, steps: 3 });
    assert_eq!(stages.last(), Some(&Stage::Decode));
    // Same seed, same images; another seed, other images.
    let again = go(&pipeline, &request).unwrap();
    assert_eq!(first.images, again.images);
    request.seed += 1;
    assert_ne!(first.images, go(&pipeline, &request).unwrap().images);
}

#[test]
fn tiled_decoding_is_available_per_request() {
    let pipeline = tiny();
    let mut request = small_request(FaceInput::None);
    request.width = 160;
    let whole = go(&pipeline, &request).unwrap();
    // 20×8 latents in 8-latent tiles overlapping by 2: 4 × 2 tiles, blended and cropped.
    request.vae_tiling = Some(VaeTiling {
        tile: 8,
        overlap: 2,
    });
    let tiled = go(&pipeline, &request).unwrap();
    assert_eq!(tiled.images[0].dimensions(), (160, 64));
    assert_eq!(whole.images[0].dimensions(), (160, 64));
}

#[test]
fn text_only_generation_uses_no_face() {
    let generated = go(&tiny(), &small_request(FaceInput::None)).unwrap();
    assert!(generated.reference_faces.is_empty());
    assert_eq!(generated.images.len(), 1);
}

#[test]
fn a_photo_without_a_face_is_a_typed_error() {
    let grey = RgbImage::from_pixel(200, 160, image::Rgb([128, 128, 128]));
    match go(&tiny(), &small_request(FaceInput::Photo(grey))) {
        Err(GenerateError::Align(AlignError::NoFaceFound { width, height, .. })) => {
            assert_eq!((width, height), (200, 160))
        }
        other => panic!("expected NoFaceFound, got {other:?}"),
    }
}

#[test]
fn bad_requests_name_the_field() {
    let pipeline = tiny();
    let base = small_request(FaceInput::None);
    let cases: Vec<(&str, GenerateRequest)> = vec![
        (
            "width",
            GenerateRequest {
                width: 50,
                ..base.clone()
            },
        ),
        (
            "height",
            GenerateRequest {
                height: 0,
                ..base.clone()
            },
        ),
        (
            "width",
            GenerateRequest {
                width: 8192,
                ..base.clone()
            },
        ),
        (
            "steps",
            GenerateRequest {
                steps: 0,
                ..base.clone()
            },
        ),
        (
            "guidance",
            GenerateRequest {
                guidance: f64::NAN,
                ..base.clone()
            },
        ),
        (
            "guidance",
            GenerateRequest {
                guidance: -1.0,
                ..base.clone()
            },
        ),
        (
            "images",
            GenerateRequest {
                images: 0,
                ..base.clone()
            },
        ),
        (
            "identity_strength",
            GenerateRequest {
                identity_strength: 2.5,
                ..base.clone()
            },
        ),
        (
            "face",
            GenerateRequest {
                face: FaceInput::Photos(Vec::new()),
                ..base.clone()
            },
        ),
        (
            "face",
            GenerateRequest {
                face: FaceInput::Aligned(RgbImage::new(100, 80)),
                ..base.clone()
            },
        ),
    ];
    assert_request_errors(&pipeline, cases);
}

#[test]
fn the_callback_can_cancel() {
    let pipeline = tiny();
    let request = small_request(FaceInput::None);
    let result = pipeline.generate(&request, |stage| match stage {
        Stage::Denoise { step: 2, .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert!(matches!(
        result,
        Err(GenerateError::Cancelled { step: 2, steps: 3 })
    ));
    let result = pipeline.generate(&request, |_| ControlFlow::Break(()));
    assert!(matches!(
        result,
        Err(GenerateError::Cancelled { step: 0, .. })
    ));
}

#[test]
fn missing_files_are_all_listed() {
    let dir = std::env::temp_dir().join(format!("faceclip-missing-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(dir.join("model/unet.pt"), b"not a checkpoint").unwrap();
    let err =
        Pipeline::<B>::from_pretrained(&dir, dir.join("vae"), &Default::default()).unwrap_err();
    match &err {
        GenerateError::MissingFiles(missing) => {
            let names: Vec<String> = missing
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect();
            assert_eq!(
                names,
                [
                    "model/face_clip_encoder.pt",
                    "vae/diffusion_pytorch_model.safetensors",
                    "vae/config.json"
                ]
            );
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    }
    assert!(err.to_string().contains("face_clip_encoder.pt"));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- FaceT5-FLUX

fn tiny_flux() -> Pipeline<B> {
    Pipeline::<B>::random_tiny_flux(&Default::default(), 7).expect("tiny FLUX pipeline")
}

fn small_flux_request(face: FaceInput) -> GenerateRequest {
    GenerateRequest {
        steps: 2,
        width: 48,
        height: 64,
        ..GenerateRequest::flux(face, "a person in sunlight")
    }
}

#[test]
fn flux_pipeline_generates_deterministic_images() {
    let pipeline = tiny_flux();
    assert_eq!(pipeline.model(), ModelKind::FaceT5Flux);
    assert!(pipeline.unet().is_none() && pipeline.transformer().is_some());
    let mut request = small_flux_request(FaceInput::Photo(astronaut()));
    assert_eq!(request.guidance, 3.5);
    assert_eq!(
        request.negative_prompt,
        faceclip_fusion::FLUX_NEGATIVE_PROMPT
    );
    request.images = 2;
    let (first, stages) = go_recording(&pipeline, &request);
    assert_eq!(first.images.len(), 2);
    assert!(first.images.iter().all(|i| i.dimensions() == (48, 64)));
    assert_eq!(first.reference_faces.len(), 1);
    assert_eq!(
        stages,
        [
            Stage::Align,
            Stage::Encode,
            Stage::Denoise { step: 1, steps: 2 },
            Stage::Denoise { step: 2, steps: 2 },
            Stage::Decode
        ]
    );
    assert_eq!(first.images, go(&pipeline, &request).unwrap().images);
    // Without true CFG (one transformer pass per step) the images change.
    request.guidance = 1.0;
    assert_ne!(first.images, go(&pipeline, &request).unwrap().images);
}

#[test]
fn flux_text_only_and_tiled_generation() {
    let pipeline = tiny_flux();
    let mut request = small_flux_request(FaceInput::None);
    request.vae_tiling = Some(VaeTiling {
        tile: 4,
        overlap: 1,
    });
    let generated = go(&pipeline, &request).unwrap();
    assert!(generated.reference_faces.is_empty());
    assert_eq!(generated.images[0].dimensions(), (48, 64));
}

#[test]
fn flux_bad_requests_are_typed_errors() {
    let pipeline = tiny_flux();
    let base = small_flux_request(FaceInput::None);
    let cases: Vec<(&str, GenerateRequest)> = vec![
        // Multiples of 8 but not of 16 (VAE 8× and 2×2 packing).
        (
            "width",
            GenerateRequest {
                width: 40,
                ..base.clone()
            },
        ),
        (
            "height",
            GenerateRequest {
                height: 72,
                ..base.clone()
            },
        ),
        (
            "scheduler",
            GenerateRequest {
                scheduler: SchedulerKind::Ddim,
                ..base.clone()
            },
        ),
        (
            "distilled_guidance",
            GenerateRequest {
                distilled_guidance: f64::INFINITY,
                ..base.clone()
            },
        ),
    ];
    assert_request_errors(&pipeline, cases);
    // A prompt longer than the 512 T5 tokens.
    let long = GenerateRequest {
        prompt: vec!["wearing glasses"; 300].join(" "),
        ..base
    };
    match go(&pipeline, &long) {
        Err(GenerateError::Encode(faceclip_fusion::EncodeError::Tokenizer(
            faceclip_encoders::TokenizerError::TooLong { limit: 512, .. },
        ))) => {}
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn flux_transformer_with_another_joint_attention_width_is_refused() {
    let device = Default::default();
    let weights = Weights::<B>::seeded(&device, 1);
    let encoder = FaceT5FluxEncoder::load(
        &weights.pp("encoder"),
        &FaceT5FluxConfig::tiny(),
        T5Tokenizer::tiny().unwrap(),
    )
    .unwrap();
    let config = FluxConfig {
        joint_attention_dim: 24,
        ..tiny::tiny_flux_config()
    };
    let transformer = FluxTransformer2DModel::load(&weights.pp("transformer"), config).unwrap();
    let vae = AutoencoderKl::load(&weights.pp("vae"), tiny::tiny_flux_vae_config()).unwrap();
    let err = Pipeline::assemble(
        Generator::Flux {
            encoder,
            transformer,
        },
        vae,
        &device,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("joint_attention_dim 24") && err.to_string().contains("32"),
        "{err}"
    );
}

#[test]
fn missing_flux_files_are_all_listed() {
    let dir = std::env::temp_dir().join(format!("faceclip-flux-missing-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model/tokenizer")).unwrap();
    std::fs::write(dir.join("model/tokenizer/tokenizer.json"), b"{}").unwrap();
    let err =
        Pipeline::<B>::from_pretrained_flux(&dir, dir.join("FLUX.1-dev"), &Default::default())
            .unwrap_err();
    match &err {
        GenerateError::MissingFiles(missing) => {
            let names: Vec<String> = missing
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect();
            assert_eq!(
                names,
                [
                    "model/face_t5_encoder.pt",
                    "model/dit.pt",
                    "FLUX.1-dev/vae/diffusion_pytorch_model.safetensors",
                    "FLUX.1-dev/vae/config.json"
                ]
            );
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn identity_similarity_scores_each_image_against_the_reference() {
    let pipeline = tiny();
    let photo = astronaut();
    let reference = pipeline
        .reference_faces(&FaceInput::Photo(photo.clone()))
        .unwrap();
    let grey = RgbImage::from_pixel(200, 160, image::Rgb([128, 128, 128]));
    let flipped = image::imageops::flip_horizontal(&photo);
    let scores = pipeline
        .identity_similarities(&reference[0], &[photo.clone(), grey.clone(), flipped])
        .unwrap();
    assert_eq!(scores.len(), 3);
    let same = scores[0].expect("the photo shows a face");
    assert!(same > 0.99, "the photo against its own crop: {same}");
    assert_eq!(scores[1], None, "no face in a grey image");
    assert!(scores[2].expect("a face") > 0.5);
    assert_eq!(
        pipeline.identity_similarity(&reference[0], &photo).unwrap(),
        scores[0]
    );
    assert_eq!(
        pipeline.identity_similarity(&reference[0], &grey).unwrap(),
        None
    );
}
