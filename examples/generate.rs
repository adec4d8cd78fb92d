//! Generates images of the person in a photo doing what a prompt says (FaceCLIP-SDXL, or
//! FaceT5-FLUX with `--model flux`).
//!
//! ```text
//! cargo run --release --example generate -- [--model sdxl|flux] [--image PATH] [--prompt TEXT]
//!     [--out DIR] [--weights FACECLIP_DIR (--vae SDXL_VAE_DIR | --flux FLUX_DIR)] [--steps N]
//!     [--guidance G] [--distilled G] [--seed S] [--width W] [--height H] [--images N]
//!     [--strength S] [--scheduler NAME] [--negative TEXT] [--no-face yes] [--tiled yes]
//!     [--backend ndarray|wgpu|cuda|cuda-bf16]
//! ```
//!
//! SDXL: with `--weights` (the FaceCLIP release: `model/face_clip_encoder.pt`, `model/unet.pt`)
//! and `--vae` (an SDXL VAE directory) it runs the released models at 864×1152, 50 steps.
//! FLUX: with `--weights` (`model/face_t5_encoder.pt`, `model/dit.pt`, `model/tokenizer/`) and
//! `--flux` (a FLUX.1-dev directory, for its VAE) it runs FaceT5-FLUX at 864×1152, 50 steps,
//! true CFG 3.5. Without weights it runs the same pipeline on a small random-weight configuration
//! (256×256, 10 steps by default): the machinery is real, the images are noise, and the output
//! says so. Prints a
//! progress bar, the time of each stage and each image's identity similarity to the reference
//! face (MobileFace cosine; "no face" when none is found). Images are written only when the whole
//! generation succeeded.

mod common;

use std::error::Error;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use faceclip::align::load_photo;
use faceclip::pipeline::{FaceInput, ModelKind, Pipeline, SchedulerKind, Stage};

use common::{run_on_backend, Flags, Job, DEMO_PHOTO};

const USAGE: &str =
    "generate [--model sdxl|flux] [--image PATH] [--prompt TEXT] [--out DIR] \
[--weights DIR (--vae DIR | --flux DIR)] [--steps N] [--guidance G] [--distilled G] [--seed S] \
[--width W] [--height H] [--images N] [--strength S] \
[--scheduler euler|euler-karras|ddim|dpm++2m|dpm++2m-karras] [--negative TEXT] [--no-face yes] [--tiled yes] \
[--backend ndarray|wgpu|cuda|cuda-bf16]";

struct Args {
    flags: Flags,
}

impl Args {
    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.flags.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v}: not a valid number")),
        }
    }
}

impl Job for Args {
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Box<dyn Error>> {
        run::<B>(self, device)
    }
}

fn run<B: Backend>(args: &Args, device: &B::Device) -> Result<(), Box<dyn Error>> {
    let flags = &args.flags;
    let started = Instant::now();
    let model_name = flags.get_or("model", "sdxl");
    let model = ModelKind::parse(&model_name)
        .ok_or(format!("--model {model_name}: expected sdxl or flux"))?;
    let (companion, companion_flag) = match model {
        ModelKind::FaceClipSdxl => (flags.get("vae"), "--vae"),
        ModelKind::FaceT5Flux => (flags.get("flux"), "--flux"),
    };
    let (pipeline, released) = match (flags.get("weights"), companion) {
        (Some(dir), Some(other)) => match model {
            ModelKind::FaceClipSdxl => (Pipeline::<B>::from_pretrained(dir, other, device)?, true),
            ModelKind::FaceT5Flux => (
                Pipeline::<B>::from_pretrained_flux(dir, other, device)?,
                true,
            ),
        },
        (None, None) => {
            println!(
                "!!! no --weights/{companion_flag} given: a SMALL RANDOM-WEIGHT {model:?} pipeline \
                 runs instead; the images are noise (the point is the machinery) !!!"
            );
            let pipeline = match model {
                ModelKind::FaceClipSdxl => Pipeline::<B>::random_tiny(device, 7)?,
                ModelKind::FaceT5Flux => Pipeline::<B>::random_tiny_flux(device, 7)?,
            };
            (pipeline, false)
        }
        _ => return Err(format!("--weights and {companion_flag} go together").into()),
    };
    println!(
        "backend {}: models loaded in {:.1?}",
        B::name(device),
        started.elapsed()
    );

    let image_path = flags.get_or("image", DEMO_PHOTO);
    let face = if flags.get("no-face").as_deref() == Some("yes") {
        FaceInput::None
    } else {
        FaceInput::Photo(load_photo(&image_path)?)
    };
    let prompt = flags.get_or(
        "prompt",
        "a person with short red hair, smiling, in sunlight",
    );
    let mut request = pipeline.request(face, prompt);
    let (default_steps, default_side) = if released {
        (50, None)
    } else {
        (10, Some(256))
    };
    request.steps = args.number("steps", default_steps)?;
    request.guidance = args.number("guidance", request.guidance)?;
    request.distilled_guidance = args.number("distilled", request.distilled_guidance)?;
    request.seed = args.number("seed", request.seed)?;
    request.width = args.number("width", default_side.unwrap_or(request.width))?;
    request.height = args.number("height", default_side.unwrap_or(request.height))?;
    request.images = args.number("images", 1)?;
    request.identity_strength = args.number("strength", 1.0)?;
    if flags.get("tiled").as_deref() == Some("yes") {
        request.vae_tiling = Some(faceclip::unet::VaeTiling::sdxl());
    }
    if let Some(negative) = flags.get("negative") {
        request.negative_prompt = negative;
    }
    if let Some(name) = flags.get("scheduler") {
        request.scheduler =
            SchedulerKind::parse(&name).ok_or(format!("--scheduler {name}: unknown sampler"))?;
    }
    println!(
        "prompt: {:?}\n{}×{}, {} step(s), guidance {}, seed {}, {:?}",
        request.prompt,
        request.width,
        request.height,
        request.steps,
        request.guidance,
        request.seed,
        request.scheduler
    );

    let generated = pipeline.generate(&request, |stage| {
        match stage {
            Stage::Denoise { step, steps } => {
                let done = 30 * step / steps;
                print!(
                    "\r[{}{}] {step}/{steps}",
                    "#".repeat(done),
                    ".".repeat(30 - done)
                );
                if step == steps {
                    println!();
                }
            }
            other => println!("{other:?}…"),
        }
        let _ = std::io::stdout().flush();
        ControlFlow::Continue(())
    })?;

    let t = generated.timings;
    println!(
        "align {:.2?} | encode {:.2?} | denoise {:.2?} ({:.2?}/step) | decode {:.2?}",
        t.align,
        t.encode,
        t.denoise,
        t.denoise / request.steps as u32,
        t.decode
    );
    let out = PathBuf::from(flags.get_or("out", "generated"));
    std::fs::create_dir_all(&out)?;
    let scores = match generated.reference_faces.first() {
        Some(reference) => pipeline.identity_similarities(reference, &generated.images)?,
        None => Vec::new(),
    };
    for (i, image) in generated.images.iter().enumerate() {
        let path = out.join(format!("image_{i}.png"));
        image.save(&path)?;
        let similarity = match scores.get(i) {
            Some(Some(s)) => format!("identity similarity {s:.3}"),
            Some(None) => "no face found in the output".into(),
            None => "text-only (no reference face)".into(),
        };
        println!("wrote {} ({similarity})", path.display());
    }
    if !released {
        println!(
            "(random weights: expect noise and no face; pass --weights and {companion_flag} for real images)"
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let allowed = [
        "model",
        "flux",
        "distilled",
        "image",
        "prompt",
        "out",
        "weights",
        "vae",
        "steps",
        "guidance",
        "seed",
        "width",
        "height",
        "images",
        "strength",
        "scheduler",
        "negative",
        "no-face",
        "tiled",
    ];
    let args = Args {
        flags: Flags::parse(&allowed, USAGE)?,
    };
    run_on_backend(&args.flags, &args)
}
