//! FaceCLIP-SDXL generation end to end: photo and prompt in, images of that person out.
//!
//! [`Pipeline`] holds the face aligner, the FaceCLIP encoder, the SDXL UNet and VAE, and the
//! identity scorer; [`Pipeline::generate`] runs one [`GenerateRequest`] as the reference
//! `infer_face_clip_sdxl.py` does (diffusers' `StableDiffusionXLPipeline` with FaceCLIP's
//! embeddings): align → encode prompt and negative prompt → denoise with classifier-free
//! guidance → VAE decode.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::tensor::{backend::Backend, Tensor};
use faceclip_align::{identity_similarity, AlignError, FaceAligner, FaceSelection, MobileFace};
use faceclip_core::image::{images_from_tensor, rgb_to_tensor};
use faceclip_core::schedule::{
    gaussian_noise, Ddim, DpmSolverMultistep, EulerDiscrete, NoiseSchedule, Scheduler,
};
use faceclip_core::weights::{KeyRemap, LoadOptions, Weights};
use faceclip_core::{InputError, LoadError};
use faceclip_fusion::encoder::SDXL_NEGATIVE_PROMPT;
use faceclip_fusion::{EncodeError, FaceClipConfig, FaceClipEncoder, FaceClipOutput};
use faceclip_unet::{
    denoise, AutoencoderKl, Conditioning, DenoiseError, LevelKind, TextTimeConfig,
    UNet2DConditionModel, UNetConfig, VaeConfig, VaeTiling,
};
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

    fn build<B: Backend>(self) -> Box<dyn Scheduler<B>> {
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
    /// Classifier-free guidance scale (default 5.0; ≤ 1 disables guidance).
    pub guidance: f64,
    /// Seed of the initial noise (the same on every backend).
    pub seed: u64,
    /// Image width in pixels: a multiple of 8 up to [`MAX_SIDE`] (default 864).
    pub width: usize,
    /// Image height in pixels: a multiple of 8 up to [`MAX_SIDE`] (default 1152).
    pub height: usize,
    /// Images to generate in one batch, 1 to 16 (default 1).
    pub images: usize,
    /// Identity strength in `[0, 2]`: 1 reproduces the reference, 0 ignores the face.
    pub identity_strength: f64,
    /// The sampler.
    pub scheduler: SchedulerKind,
    /// Decode the latents in overlapping tiles (bounded memory for large images; diffusers'
    /// `enable_tiling()`); `None` decodes in one pass.
    pub vae_tiling: Option<VaeTiling>,
}

impl GenerateRequest {
    /// A request with the reference script's settings for `face` and `prompt`.
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
            vae_tiling: None,
        }
    }

    /// Checks every setting; `downscale` is the VAE's latent reduction.
    fn validate(&self, downscale: usize) -> Result<(), GenerateError> {
        let bad =
            |field: &'static str, reason: String| Err(GenerateError::Request { field, reason });
        for (field, side) in [("width", self.width), ("height", self.height)] {
            let multiple = downscale.max(8);
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
        if !(self.guidance.is_finite() && self.guidance >= 0.0) {
            return bad(
                "guidance",
                format!("{} must be a finite number ≥ 0", self.guidance),
            );
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

/// A stage of [`Pipeline::generate`], reported to the progress callback.
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

/// Where [`Pipeline::from_pretrained`] finds each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedFiles {
    /// `model/face_clip_encoder.pt` (or a safetensors conversion).
    pub encoder: PathBuf,
    /// `model/unet.pt` (or diffusers' `unet/diffusion_pytorch_model.safetensors`).
    pub unet: PathBuf,
    /// The UNet's `config.json` when present (SDXL base otherwise).
    pub unet_config: Option<PathBuf>,
    /// The SDXL VAE weights (diffusers safetensors).
    pub vae: PathBuf,
    /// The SDXL VAE `config.json`.
    pub vae_config: PathBuf,
}

impl PretrainedFiles {
    /// Finds the files under `dir` (FaceCLIP's release: `model/face_clip_encoder.pt`,
    /// `model/unet.pt`, optionally `unet/config.json`) and `vae_dir` (an SDXL VAE directory:
    /// `config.json` and `diffusion_pytorch_model[.fp16].safetensors`). Every missing file is
    /// listed in the error.
    pub fn locate(dir: &Path, vae_dir: &Path) -> Result<Self, GenerateError> {
        let first = |candidates: &[PathBuf]| candidates.iter().find(|p| p.is_file()).cloned();
        let mut missing = Vec::new();
        let mut need = |candidates: Vec<PathBuf>| {
            first(&candidates).unwrap_or_else(|| {
                missing.push(candidates[0].clone());
                candidates[0].clone()
            })
        };
        let encoder = need(vec![
            dir.join("model/face_clip_encoder.pt"),
            dir.join("model/face_clip_encoder.safetensors"),
        ]);
        let unet = need(vec![
            dir.join("model/unet.pt"),
            dir.join("model/unet.safetensors"),
            dir.join("unet/diffusion_pytorch_model.safetensors"),
        ]);
        let vae = need(vec![
            vae_dir.join("diffusion_pytorch_model.safetensors"),
            vae_dir.join("diffusion_pytorch_model.fp16.safetensors"),
        ]);
        let vae_config = need(vec![vae_dir.join("config.json")]);
        if !missing.is_empty() {
            return Err(GenerateError::MissingFiles(missing));
        }
        Ok(Self {
            encoder,
            unet,
            unet_config: first(&[dir.join("unet/config.json"), dir.join("model/config.json")]),
            vae,
            vae_config,
        })
    }
}

/// FaceCLIP-SDXL: aligner, encoder, UNet, VAE and identity scorer on one device.
#[derive(Debug)]
pub struct Pipeline<B: Backend> {
    aligner: FaceAligner<B>,
    encoder: FaceClipEncoder<B>,
    unet: UNet2DConditionModel<B>,
    vae: AutoencoderKl<B>,
    scorer: MobileFace<B>,
    device: B::Device,
}

impl<B: Backend> Pipeline<B> {
    /// Loads the released FaceCLIP-SDXL files (see [`PretrainedFiles::locate`]) strictly, with
    /// the bundled face detector and scorer.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        vae_dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self, GenerateError> {
        let files = PretrainedFiles::locate(dir.as_ref(), vae_dir.as_ref())?;
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| LoadError::Io {
                file: path.to_path_buf(),
                source,
            })
        };
        let unet_config = match &files.unet_config {
            Some(path) => UNetConfig::from_json(&read(path)?)?,
            None => UNetConfig::sdxl(),
        };
        let vae_config = VaeConfig::from_json(&read(&files.vae_config)?)?;
        let (encoder, _) =
            FaceClipEncoder::from_checkpoint(&files.encoder, &FaceClipConfig::sdxl(), device)?;
        let strict = |path: &Path| {
            Weights::<B>::open(path, &KeyRemap::new(), LoadOptions::default(), device)
        };
        let unet_weights = strict(&files.unet)?;
        let unet = UNet2DConditionModel::load(&unet_weights, unet_config)?;
        unet_weights.finish()?;
        let vae_weights = strict(&files.vae)?;
        let vae = AutoencoderKl::load(&vae_weights, vae_config)?;
        vae_weights.finish()?;
        Self::assemble(encoder, unet, vae, device)
    }

    /// The whole pipeline at a small size with random weights (seeded, identical on every
    /// backend): the machinery runs end to end in seconds on a CPU, the images are noise.
    pub fn random_tiny(device: &B::Device, seed: u64) -> Result<Self, GenerateError> {
        let weights = Weights::<B>::seeded(device, seed);
        let encoder = FaceClipEncoder::load(&weights.pp("encoder"), &FaceClipConfig::tiny())?;
        let unet = UNet2DConditionModel::load(&weights.pp("unet"), tiny_unet_config())?;
        let vae = AutoencoderKl::load(&weights.pp("vae"), tiny_vae_config())?;
        Self::assemble(encoder, unet, vae, device)
    }

    fn assemble(
        encoder: FaceClipEncoder<B>,
        unet: UNet2DConditionModel<B>,
        vae: AutoencoderKl<B>,
        device: &B::Device,
    ) -> Result<Self, GenerateError> {
        Ok(Self {
            aligner: FaceAligner::bundled(device)?,
            encoder,
            unet,
            vae,
            scorer: MobileFace::bundled(device)?,
            device: device.clone(),
        })
    }

    /// The UNet (for its configuration, or to run it directly).
    pub fn unet(&self) -> &UNet2DConditionModel<B> {
        &self.unet
    }

    /// Generates `request.images` images. `on_progress` hears of every stage and denoising
    /// step; returning [`ControlFlow::Break`] cancels with [`GenerateError::Cancelled`]. Nothing
    /// is written anywhere: saving the images is the caller's choice.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        mut on_progress: impl FnMut(Stage) -> ControlFlow<()>,
    ) -> Result<Generated, GenerateError> {
        let downscale = self.vae.downscale();
        request.validate(downscale)?;
        let mut timings = StageTimings::default();
        let mut report = |stage: Stage| match on_progress(stage) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(GenerateError::Cancelled {
                step: match stage {
                    Stage::Denoise { step, .. } => step,
                    _ => 0,
                },
                steps: request.steps,
            }),
        };

        report(Stage::Align)?;
        let started = Instant::now();
        let reference_faces = self.reference_faces(&request.face)?;
        timings.align = started.elapsed();

        report(Stage::Encode)?;
        let started = Instant::now();
        let positive = self.encode_prompt(&reference_faces, request)?;
        let negative = self
            .encoder
            .encode_negative(&request.negative_prompt, &self.device)?;
        timings.encode = started.elapsed();

        let n = request.images;
        let repeat3 = |t: Tensor<B, 3>| t.repeat_dim(0, n);
        let repeat2 = |t: Tensor<B, 2>| t.repeat_dim(0, n);
        let (h, w) = (request.height as f32, request.width as f32);
        let conditioning = Conditioning {
            positive: repeat3(positive.prompt_embeds),
            positive_pooled: repeat2(positive.pooled),
            negative: repeat3(negative.prompt_embeds),
            negative_pooled: repeat2(negative.pooled),
            time_ids: [h, w, 0.0, 0.0, h, w],
        };
        let latent_channels = self.unet.config().in_channels;
        let shape = [
            n,
            latent_channels,
            request.height / downscale,
            request.width / downscale,
        ];
        let noise = gaussian_noise::<B, 4>(request.seed, shape, &self.device);
        let mut scheduler = request.scheduler.build::<B>();
        let started = Instant::now();
        let mut cancelled = None;
        let latents = denoise(
            &self.unet,
            scheduler.as_mut(),
            noise,
            &conditioning,
            request.steps,
            request.guidance,
            &mut |p| {
                let stage = Stage::Denoise {
                    step: p.step,
                    steps: p.steps,
                };
                match report(stage) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        cancelled = Some(e);
                        ControlFlow::Break(())
                    }
                }
            },
        );
        if let Some(e) = cancelled {
            return Err(e);
        }
        let latents = latents?;
        timings.denoise = started.elapsed();

        report(Stage::Decode)?;
        let started = Instant::now();
        let decoded = match request.vae_tiling {
            Some(tiling) => self.vae.decode_tiled(self.vae.unscale(latents), tiling)?,
            None => self.vae.decode_scaled(latents)?,
        };
        let images = images_from_tensor((decoded / 2.0 + 0.5).clamp(0.0, 1.0))?;
        timings.decode = started.elapsed();
        Ok(Generated {
            images,
            reference_faces,
            timings,
        })
    }

    /// Cosine similarity of MobileFace identity embeddings between a reference crop and the
    /// largest face found in `image`; `None` when `image` shows no face.
    pub fn identity_similarity(
        &self,
        reference_face: &RgbImage,
        image: &RgbImage,
    ) -> Result<Option<f32>, GenerateError> {
        let generated = match self.aligner.align(image, FaceSelection::Largest) {
            Ok(face) => face.image,
            Err(AlignError::NoFaceFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let a = self.scorer.embed(reference_face)?;
        let b = self.scorer.embed(&generated)?;
        Ok(Some(identity_similarity(&a, &b)?))
    }

    /// Aligned crops of the request's face input.
    fn reference_faces(&self, face: &FaceInput) -> Result<Vec<RgbImage>, GenerateError> {
        let align = |photo: &RgbImage| {
            self.aligner
                .align(photo, FaceSelection::Largest)
                .map(|f| f.image)
        };
        Ok(match face {
            FaceInput::Photo(photo) => vec![align(photo)?],
            FaceInput::Photos(photos) => photos.iter().map(align).collect::<Result<_, _>>()?,
            FaceInput::Aligned(crop) => {
                if crop.width() != crop.height() || crop.width() < 16 {
                    return Err(GenerateError::Request {
                        field: "face",
                        reason: format!(
                            "an aligned face must be a square crop of at least 16 px, got {}×{}",
                            crop.width(),
                            crop.height()
                        ),
                    });
                }
                vec![crop.clone()]
            }
            FaceInput::None => Vec::new(),
        })
    }

    /// The positive conditioning: the person's identity with the prompt, or the face-absent
    /// branch (zero image, no identity prefix) when there is no face.
    fn encode_prompt(
        &self,
        faces: &[RgbImage],
        request: &GenerateRequest,
    ) -> Result<FaceClipOutput<B>, GenerateError> {
        if faces.is_empty() {
            let size = faceclip_align::FACECLIP_CROP as usize;
            let blank = Tensor::zeros([1, 3, size, size], &self.device);
            return Ok(self.encoder.encode(blank, &[&request.prompt], &[false])?);
        }
        let crops = faces
            .iter()
            .map(|f| rgb_to_tensor::<B>(f, &self.device).map(|t| t.unsqueeze_dim::<4>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.encoder.encode_person(
            Tensor::cat(crops, 0),
            &request.prompt,
            request.identity_strength,
        )?)
    }
}

/// The UNet of [`Pipeline::random_tiny`]: SDXL's layout at 16/32/32 channels, context 16 + 24
/// (the widths of [`FaceClipConfig::tiny`]).
fn tiny_unet_config() -> UNetConfig {
    UNetConfig {
        block_out_channels: vec![16, 32, 32],
        layers_per_block: 1,
        transformer_layers_per_block: vec![1, 1, 1],
        attention_heads: vec![2, 2, 2],
        cross_attention_dim: 16 + 24,
        norm_num_groups: 8,
        time_embedding_dim: 64,
        text_time: Some(TextTimeConfig {
            time_embed_dim: 8,
            projection_input_dim: 6 * 8 + 24,
        }),
        down_levels: vec![
            LevelKind::Plain,
            LevelKind::CrossAttention,
            LevelKind::CrossAttention,
        ],
        up_levels: vec![
            LevelKind::CrossAttention,
            LevelKind::CrossAttention,
            LevelKind::Plain,
        ],
        ..UNetConfig::sdxl()
    }
}

/// The VAE of [`Pipeline::random_tiny`]: SDXL's four levels (8× reduction) at 8–32 channels.
fn tiny_vae_config() -> VaeConfig {
    VaeConfig {
        block_out_channels: vec![8, 16, 32, 32],
        layers_per_block: 1,
        norm_num_groups: 8,
        ..VaeConfig::sdxl()
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::*;
    use crate::backend::NdArray;

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

    #[test]
    fn generates_deterministic_images_of_the_requested_size() {
        let pipeline = tiny();
        let mut request = small_request(FaceInput::Photo(astronaut()));
        request.images = 2;
        let mut stages = Vec::new();
        let first = pipeline
            .generate(&request, |s| {
                stages.push(s);
                ControlFlow::Continue(())
            })
            .unwrap();
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
        for (field, request) in cases {
            match go(&pipeline, &request) {
                Err(GenerateError::Request { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a request error, got {other:?}"),
            }
        }
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
}
