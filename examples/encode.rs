//! Encodes a face photo and a prompt with the complete FaceCLIP-SDXL encoder (L and
//! bigG branches), printing the shapes, norms and timing of each stage — positive and negative.
//!
//! ```text
//! cargo run --release --example encode -- [--prompt TEXT] [--image PATH] [--aligned yes|no]
//!     [--weights face_clip_encoder.pt] [--backend ndarray|wgpu|cuda|cuda-bf16]
//! ```
//!
//! The face is found with RetinaFace and aligned to the ArcFace template at 448×448 (the largest
//! face; `faceclip-align`); pass `--aligned yes` for a photo that is already such a crop. Without `--weights` the 1.57 B
//! parameters are random and the numbers mean nothing (shapes and speed are real).

mod common;

use std::error::Error;
use std::time::Instant;

use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use faceclip::align::{load_photo, FaceAligner, FaceSelection};
use faceclip::core::image::rgb_to_tensor;
use faceclip::core::weights::Weights;
use faceclip::fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip::fusion::{FaceClipConfig, FaceClipEncoder};

use common::{run_on_backend, Flags, Job, DEMO_PHOTO};

struct Args {
    prompt: String,
    image: String,
    aligned: bool,
    weights: Option<String>,
}

fn norm<B: Backend, const D: usize>(t: &Tensor<B, D>) -> f32 {
    t.clone().powf_scalar(2.0).sum().sqrt().into_scalar().elem()
}

impl Job for Args {
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Box<dyn Error>> {
        run::<B>(self, device)
    }
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

    let photo = load_photo(&args.image)?;
    let face = if args.aligned {
        rgb_to_tensor::<B>(&photo, device)?.unsqueeze_dim::<4>(0)
    } else {
        let start = Instant::now();
        let aligned = FaceAligner::<B>::bundled(device)?.align(&photo, FaceSelection::Largest)?;
        println!(
            "detected and aligned the face (score {:.3}) in {:?}",
            aligned.face.score,
            start.elapsed()
        );
        aligned.to_tensor::<B>(device)?
    };
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
    let flags = Flags::parse(&["prompt", "image", "aligned", "weights"], "encode [--prompt TEXT] [--image PATH] [--aligned yes|no] [--weights face_clip_encoder.pt] [--backend ndarray|wgpu|cuda|cuda-bf16]")?;
    let args = Args {
        prompt: flags.get_or("prompt", "a woman with short red hair, in sunlight"),
        image: flags.get_or("image", DEMO_PHOTO),
        aligned: flags.get_or("aligned", "no") == "yes",
        weights: flags.get("weights"),
    };
    run_on_backend(&flags, &args)
}
