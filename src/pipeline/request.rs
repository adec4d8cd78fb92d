//! What a generation is asked for and what it returns.

use std::path::PathBuf;
use std::time::Duration;

use burn::tensor::backend::Backend;
use faceclip_align::AlignError;
use faceclip_core::schedule::{Ddim, DpmSolverMultistep, EulerDiscrete, NoiseSchedule, Scheduler};
use faceclip_core::{InputError, LoadError};
use faceclip_fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip_fusion::{EncodeError, FLUX_NEGATIVE_PROMPT};
use faceclip_unet::{check_guidance, DenoiseError, VaeTiling};
use image::RgbImage;

/// The seed of the reference script (`torch.manual_seed(453563)`); our noise generator differs
/// from PyTorch's, so the same seed does not give the same image as the reference.
pub const REFERENCE_SEED: u64 = 453_563;
/// Largest accepted width or height in pixels.
pub const MAX_SIDE: usize = 4096;

/// The face that conditions a generation.
#[derive(Debug, Clone, Default)]
pub enum FaceInput {
    /// A photo: the largest face is detected and aligned.
    Photo(RgbImage),
    /// Several photos of the same person: each is aligned and the identities are averaged.
    Photos(Vec<RgbImage>),
    /// A face already aligned to the ArcFace template (square, 448×448 as FaceCLIP's crops).
    Aligned(RgbImage),
    /// No face: text-only generation through the reference's face-absent branch.
    #[default]
    None,
}

/// Which released FaceCLIP model a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// FaceCLIP-SDXL: the FaceCLIP L+bigG encoder and the SDXL UNet (`infer_face_clip_sdxl.py`).
    #[default]
    FaceClipSdxl,
    /// FaceT5-FLUX: FaceT5 + CLIP-L and the FLUX.1-dev transformer (`infer_face_t5_flux.py`).
    FaceT5Flux,
}

impl ModelKind {
    /// Parses `sdxl` or `flux`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sdxl" => Some(Self::FaceClipSdxl),
            "flux" => Some(Self::FaceT5Flux),
            _ => None,
        }
    }
}

/// The sampler of the denoising loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    /// diffusers' `EulerDiscreteScheduler` as SDXL ships it (the reference's).
    #[default]
    Euler,
    /// Euler with Karras σ spacing.
    EulerKarras,
    /// DDIM, η = 0.
    Ddim,
    /// DPM-Solver++ 2M.
    DpmSolver2M,
    /// DPM-Solver++ 2M with Karras σ spacing.
    DpmSolver2MKarras,
}

impl SchedulerKind {
    /// Parses `euler`, `euler-karras`, `ddim`, `dpm++2m`, `dpm++2m-karras`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "euler" => Self::Euler,
            "euler-karras" => Self::EulerKarras,
            "ddim" => Self::Ddim,
            "dpm++2m" => Self::DpmSolver2M,
            "dpm++2m-karras" => Self::DpmSolver2MKarras,
            _ => return None,
        })
    }

    pub(super) fn build<B: Backend>(self) -> Box<dyn Scheduler<B>> {
        let leading = NoiseSchedule::sdxl();
        match self {
            Self::Euler => Box::new(EulerDiscrete::new(leading, false)),
            Self::EulerKarras => Box::new(EulerDiscrete::new(leading, true)),
            Self::Ddim => Box::new(Ddim::new(leading, false)),
            Self::DpmSolver2M => Box::new(DpmSolverMultistep::new(leading, false)),
            Self::DpmSolver2MKarras => Box::new(DpmSolverMultistep::new(leading, true)),
        }
    }
}

/// One generation: what to draw, of whom, and how.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The reference face.
    pub face: FaceInput,
    /// What the images should show.
    pub prompt: String,
    /// What they should not show (default: the reference script's negative prompt).
    pub negative_prompt: String,
    /// Denoising steps, 1 to 1000 (default 50).
    pub steps: usize,
    /// Classifier-free guidance scale: SDXL CFG (default 5.0) or FLUX's true CFG with a second
    /// pass on the negative prompt (default 3.5); ≤ 1 disables guidance.
    pub guidance: f64,
    /// Seed of the initial noise (the same on every backend).
    pub seed: u64,
    /// Image width in pixels: a multiple of 8 (SDXL) or 16 (FLUX) up to [`MAX_SIDE`]
    /// (default 864).
    pub width: usize,
    /// Image height in pixels, like the width (default 1152).
    pub height: usize,
    /// Images to generate in one batch, 1 to 16 (default 1).
    pub images: usize,
    /// Identity strength in `[0, 2]`: 1 reproduces the reference, 0 ignores the face.
    pub identity_strength: f64,
    /// The sampler (SDXL; FLUX always uses flow-matching Euler and accepts only
    /// [`SchedulerKind::Euler`]).
    pub scheduler: SchedulerKind,
    /// FLUX's distilled guidance, embedded in the transformer (default 1.0 as the FaceT5 script;
    /// FaceCLIP-SDXL ignores it).
    pub distilled_guidance: f64,
    /// Decode the latents in overlapping tiles (bounded memory for large images; diffusers'
    /// `enable_tiling()`); `None` decodes in one pass.
    pub vae_tiling: Option<VaeTiling>,
}

impl GenerateRequest {
    /// A request with the settings of the reference script of `model`.
    pub fn for_model(model: ModelKind, face: FaceInput, prompt: impl Into<String>) -> Self {
        match model {
            ModelKind::FaceClipSdxl => Self::new(face, prompt),
            ModelKind::FaceT5Flux => Self::flux(face, prompt),
        }
    }

    /// A request with the FaceT5-FLUX script's settings: its negative prompt, true CFG 3.5,
    /// distilled guidance 1.0, 50 steps, 864×1152.
    pub fn flux(face: FaceInput, prompt: impl Into<String>) -> Self {
        Self {
            negative_prompt: FLUX_NEGATIVE_PROMPT.to_string(),
            guidance: 3.5,
            ..Self::new(face, prompt)
        }
    }

    /// A request with the FaceCLIP-SDXL script's settings for `face` and `prompt`.
    pub fn new(face: FaceInput, prompt: impl Into<String>) -> Self {
        Self {
            face,
            prompt: prompt.into(),
            negative_prompt: SDXL_NEGATIVE_PROMPT.to_string(),
            steps: 50,
            guidance: 5.0,
            seed: REFERENCE_SEED,
            width: 864,
            height: 1152,
            images: 1,
            identity_strength: 1.0,
            scheduler: SchedulerKind::Euler,
            distilled_guidance: 1.0,
            vae_tiling: None,
        }
    }

    /// Checks every setting for `model`, whose image sides must be multiples of `multiple`
    /// (the VAE reduction, times 2 for FLUX's latent packing).
    pub(super) fn validate(&self, model: ModelKind, multiple: usize) -> Result<(), GenerateError> {
        let bad =
            |field: &'static str, reason: String| Err(GenerateError::Request { field, reason });
        if model == ModelKind::FaceT5Flux {
            if self.scheduler != SchedulerKind::Euler {
                return bad(
                    "scheduler",
                    format!(
                        "{:?}: FLUX samples with flow-matching Euler only (SchedulerKind::Euler)",
                        self.scheduler
                    ),
                );
            }
            if !self.distilled_guidance.is_finite() {
                return bad(
                    "distilled_guidance",
                    format!("{} must be finite", self.distilled_guidance),
                );
            }
        }
        for (field, side) in [("width", self.width), ("height", self.height)] {
            let multiple = multiple.max(8);
            if side == 0 || !side.is_multiple_of(multiple) || side > MAX_SIDE {
                return bad(
                    field,
                    format!("{side} must be a positive multiple of {multiple}, at most {MAX_SIDE}"),
                );
            }
        }
        if self.steps == 0 || self.steps > 1000 {
            return bad(
                "steps",
                format!("{} must be between 1 and 1000", self.steps),
            );
        }
        if let Err(InputError::Value { reason, .. }) = check_guidance("guidance", self.guidance) {
            return bad("guidance", reason);
        }
        if self.images == 0 || self.images > 16 {
            return bad(
                "images",
                format!("{} must be between 1 and 16", self.images),
            );
        }
        if !(0.0..=2.0).contains(&self.identity_strength) {
            return bad(
                "identity_strength",
                format!("{} must be within [0, 2]", self.identity_strength),
            );
        }
        if let FaceInput::Photos(photos) = &self.face {
            if photos.is_empty() {
                return bad("face", "FaceInput::Photos holds no photo".into());
            }
        }
        Ok(())
    }
}

/// A stage of [`Pipeline::generate`](super::Pipeline::generate), reported to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Face detection and alignment.
    Align,
    /// FaceCLIP encoding of the prompt and the negative prompt.
    Encode,
    /// Denoising step `step` of `steps` finished.
    Denoise {
        /// Steps finished.
        step: usize,
        /// Total steps.
        steps: usize,
    },
    /// VAE decoding.
    Decode,
}

/// Wall time spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Detection and alignment.
    pub align: Duration,
    /// Prompt and negative-prompt encoding.
    pub encode: Duration,
    /// All denoising steps.
    pub denoise: Duration,
    /// VAE decoding.
    pub decode: Duration,
}

/// The result of a generation.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The images, `width × height`.
    pub images: Vec<RgbImage>,
    /// The aligned reference crops that conditioned them (empty for [`FaceInput::None`]).
    pub reference_faces: Vec<RgbImage>,
    /// Time per stage.
    pub timings: StageTimings,
}

/// Everything that can stop a pipeline from loading or generating.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Files `from_pretrained` needs are absent.
    #[error("missing model files: {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingFiles(Vec<PathBuf>),
    /// A checkpoint or config could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A setting of the request is invalid.
    #[error("invalid request: {field}: {reason}")]
    Request {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Detection or alignment failed (for example no face in the photo).
    #[error(transparent)]
    Align(#[from] AlignError),
    /// The encoder refused its input.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A model refused its input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The progress callback cancelled the generation after `step` of `steps` steps.
    #[error("generation cancelled after step {step} of {steps}")]
    Cancelled {
        /// Denoising steps finished.
        step: usize,
        /// Total steps.
        steps: usize,
    },
}

impl From<DenoiseError> for GenerateError {
    fn from(e: DenoiseError) -> Self {
        match e {
            DenoiseError::Input(e) => Self::Input(e),
            DenoiseError::Cancelled { step, steps } => Self::Cancelled { step, steps },
        }
    }
}
