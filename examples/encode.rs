//! Encodes an aligned face photo and a prompt with the complete FaceCLIP-SDXL encoder (L and
//! bigG branches), printing the shapes, norms and timing of each stage — positive and negative.
//!
//! ```text
//! cargo run --release --example encode -- [--prompt TEXT] [--image PATH]
//!     [--weights face_clip_encoder.pt] [--backend ndarray|wgpu|cuda]
//! ```
//!
//! The photo must already be aligned to the ArcFace template (a 448×448 crop as in FaceCLIP's
//! demo assets); any size is resized to 112×112 inside. Without `--weights` the 1.57 B
//! parameters are random and the numbers mean nothing (shapes and speed are real).

use std::error::Error;
use std::time::Instant;

use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use faceclip::core::image::{load_rgb, rgb_to_tensor};
use faceclip::core::weights::Weights;
use faceclip::fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip::fusion::{FaceClipConfig, FaceClipEncoder};

struct Args {
    prompt: String,
    image: String,
    weights: Option<String>,
    backend: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        prompt: "a woman with short red hair, in sunlight".into(),
        image: concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut.png").into(),
        weights: None,
        backend: "ndarray".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--prompt" => args.prompt = value()?,
            "--image" => args.image = value()?,
            "--weights" => args.weights = Some(value()?),
            "--backend" => args.backend = value()?,
            "-h" | "--help" => {
                return Err("usage: encode [--prompt TEXT] [--image PATH] [--weights face_clip_encoder.pt] [--backend ndarray|wgpu|cuda]".into())
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

fn norm<B: Backend, const D: usize>(t: &Tensor<B, D>) -> f32 {
    t.clone().powf_scalar(2.0).sum().sqrt().into_scalar().elem()
}

fn run<B: Backend>(args: &Args, device: &B::Device) -> Result<(), Box<dyn Error>> {
    let config = FaceClipConfig::sdxl();
    let start = Instant::now();
    let encoder = match &args.weights {
        Some(path) => {
            let (encoder, report) = FaceClipEncoder::<B>::from_checkpoint(path, &config, device)?;
            println!("loaded {path}: {report}");
            encoder
        }
        None => {
            println!("!!! no --weights given: RANDOM weights, the embeddings are meaningless !!!");
            FaceClipEncoder::<B>::load(&Weights::random(device), &config)?
        }
    };
    println!(
        "backend {}: encoder built in {:?}",
        B::name(device),
        start.elapsed()
    );

    let photo = load_rgb(&args.image)?;
    let face = rgb_to_tensor::<B>(&photo, device)?.unsqueeze_dim::<4>(0);
    println!("face {} → {:?}", args.image, face.dims());

    let start = Instant::now();
    let positive = encoder.encode(face.clone(), &[args.prompt.as_str()], &[true])?;
    println!(
        "positive: prompt_embeds {:?} (‖·‖ {:.3}), pooled {:?} (‖·‖ {:.3}) in {:?}",
        positive.prompt_embeds.dims(),
        norm(&positive.prompt_embeds),
        positive.pooled.dims(),
        norm(&positive.pooled),
        start.elapsed()
    );

    let start = Instant::now();
    let negative = encoder.encode(face.zeros_like(), &[SDXL_NEGATIVE_PROMPT], &[false])?;
    println!(
        "negative: prompt_embeds {:?} (‖·‖ {:.3}), pooled {:?} (‖·‖ {:.3}) in {:?}",
        negative.prompt_embeds.dims(),
        norm(&negative.prompt_embeds),
        negative.pooled.dims(),
        norm(&negative.pooled),
        start.elapsed()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    match args.backend.as_str() {
        #[cfg(feature = "ndarray")]
        "ndarray" => run::<faceclip::backend::NdArray>(&args, &Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => run::<faceclip::backend::Wgpu>(&args, &Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => run::<faceclip::backend::Cuda>(&args, &Default::default()),
        other => Err(format!(
            "backend `{other}` is unknown or not compiled in (enable its cargo feature)"
        )
        .into()),
    }
}
