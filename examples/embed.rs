//! Tokenizes a prompt and encodes a face photo with the real-size FaceCLIP encoders, printing
//! shapes and timings.
//!
//! ```text
//! cargo run --release --example embed -- [--prompt TEXT] [--image PATH]
//!     [--checkpoint face_clip_encoder.pt] [--backend ndarray|wgpu|cuda|cuda-bf16]
//! ```
//!
//! Without `--checkpoint` the models carry random weights (shapes and speed are real, the
//! numbers are not). With the released `face_clip_encoder.pt`, the L branch (`face_clip_l.*`)
//! is loaded from it. The photo should be a face crop aligned to the ArcFace template; face
//! detection and alignment are not part of this example.

mod common;

use std::error::Error;
use std::time::Instant;

use burn::tensor::backend::Backend;
use faceclip::core::image::{load_rgb, rgb_to_tensor};
use faceclip::core::weights::{KeyRemap, LoadOptions, Weights};
use faceclip::encoders::{ClipTokenizer, FaceVit, FaceVitConfig, TextTower, TextTowerConfig};

use common::{run_on_backend, Flags, Job, DEMO_PHOTO};

struct Args {
    prompt: String,
    image: String,
    checkpoint: Option<String>,
}

impl Job for Args {
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Box<dyn Error>> {
        run::<B>(self, device)
    }
}

fn run<B: Backend>(args: &Args, device: &B::Device) -> Result<(), Box<dyn Error>> {
    let (weights, source) = match &args.checkpoint {
        Some(path) => {
            let options = LoadOptions {
                strict: true,
                ..LoadOptions::default()
            };
            (
                Weights::<B>::open(path, &KeyRemap::faceclip(), options, device)?.pp("face_clip_l"),
                path.as_str(),
            )
        }
        None => (Weights::<B>::random(device), "random weights"),
    };
    println!("backend {}, weights: {source}", B::name(device));

    let start = Instant::now();
    let tokenizer = ClipTokenizer::openclip()?;
    let prompt = format!("Photo of a id person. {}", args.prompt);
    let ids = tokenizer.tokenize(&prompt)?;
    let used = ids.iter().filter(|&&id| id != 0).count();
    println!(
        "tokenized {used} of 77 positions in {:?}: {:?}…",
        start.elapsed(),
        &ids[..used.min(12)]
    );

    let start = Instant::now();
    let tower = TextTower::load(&weights, TextTowerConfig::vit_l_14_quickgelu())?;
    let vit = FaceVit::load(&weights.pp("face_encoder"), FaceVitConfig::arcface_vit_l())?;
    println!(
        "built CLIP-L text tower and ArcFace ViT-L in {:?}",
        start.elapsed()
    );
    if args.checkpoint.is_some() {
        println!("checkpoint keys of the L branch: {}", weights.report());
    }

    let photo = load_rgb(&args.image)?;
    let image = rgb_to_tensor::<B>(&photo, device)?.unsqueeze_dim::<4>(0);
    println!("face photo {} → tensor {:?}", args.image, image.dims());

    let start = Instant::now();
    let face = vit.forward(image)?;
    let identity = face.identity.clone().into_data();
    println!(
        "face ViT: identity {:?}, patch tokens {:?} in {:?}",
        face.identity.dims(),
        face.patch_tokens.dims(),
        start.elapsed()
    );

    let start = Instant::now();
    let ids = tokenizer.tokenize_batch::<B>(&[prompt.as_str()], device)?;
    let text = tower.forward(ids, None)?;
    let pooled = text.pooled.clone().into_data();
    println!(
        "text tower: hidden {:?}, pooled {:?} in {:?}",
        text.hidden.dims(),
        text.pooled.dims(),
        start.elapsed()
    );
    let head = |d: &burn::tensor::TensorData| {
        d.iter::<f32>()
            .take(4)
            .map(|v| format!("{v:+.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "identity[..4] = [{}], pooled[..4] = [{}]",
        head(&identity),
        head(&pooled)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let flags = Flags::parse(
        &["prompt", "image", "checkpoint"],
        "embed [--prompt TEXT] [--image PATH] [--checkpoint FILE.pt] [--backend ndarray|wgpu|cuda|cuda-bf16]",
    )?;
    let args = Args {
        prompt: flags.get_or(
            "prompt",
            "A woman wearing a blue denim shirt and khaki pants, on a rocky desert plateau.",
        ),
        image: flags.get_or("image", DEMO_PHOTO),
        checkpoint: flags.get("checkpoint"),
    };
    run_on_backend(&flags, &args)
}
