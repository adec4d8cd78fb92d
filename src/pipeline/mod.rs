//! Generation end to end: photo and prompt in, images of that person out.
//!
//! [`Pipeline`] holds the face aligner, one of FaceCLIP's two generators, the VAE and the
//! identity scorer; [`Pipeline::generate`] runs one [`GenerateRequest`] as the reference scripts
//! do:
//! - FaceCLIP-SDXL (`infer_face_clip_sdxl.py`, diffusers' `StableDiffusionXLPipeline` with
//!   FaceCLIP's embeddings): align → FaceCLIP-encode prompt and negative prompt → denoise with
//!   classifier-free guidance → VAE decode;
//! - FaceT5-FLUX (`infer_face_t5_flux.py`, diffusers' `FluxPipeline`): align → FaceT5 + CLIP-L
//!   encode prompt and negative prompt → flow-matching Euler on packed latents with distilled
//!   guidance and true CFG → unpack → VAE decode.

mod files;
mod request;
mod tiny;

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use burn::tensor::{backend::Backend, Tensor};
use faceclip_align::{identity_similarity, AlignError, FaceAligner, FaceSelection, MobileFace};
use faceclip_core::image::{images_from_tensor, rgb_to_tensor};
use faceclip_core::schedule::gaussian_noise;
use faceclip_core::weights::{KeyRemap, LoadOptions, Weights};
use faceclip_core::LoadError;
use faceclip_dit::{
    denoise_flux, pack_latents, unpack_latents, FluxConditioning, FluxConfig, FluxGuidance,
    FluxTransformer2DModel,
};
use faceclip_encoders::T5Tokenizer;
use faceclip_fusion::{FaceClipConfig, FaceClipEncoder, FaceT5FluxConfig, FaceT5FluxEncoder};
use faceclip_unet::{
    denoise, AutoencoderKl, Conditioning, DenoiseError, StepProgress, UNet2DConditionModel,
    UNetConfig, VaeConfig,
};
use image::RgbImage;

pub use files::{FluxFiles, PretrainedFiles};
pub use request::{
    FaceInput, GenerateError, GenerateRequest, Generated, ModelKind, SchedulerKind, Stage,
    StageTimings, MAX_SIDE, REFERENCE_SEED,
};

/// The text encoder and denoiser of one of FaceCLIP's models.
// One per pipeline: the size difference between the variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Generator<B: Backend> {
    Sdxl {
        encoder: FaceClipEncoder<B>,
        unet: UNet2DConditionModel<B>,
    },
    Flux {
        encoder: FaceT5FluxEncoder<B>,
        transformer: FluxTransformer2DModel<B>,
    },
}

/// A FaceCLIP model (SDXL or FLUX) with its aligner, VAE and identity scorer on one device.
#[derive(Debug)]
pub struct Pipeline<B: Backend> {
    aligner: FaceAligner<B>,
    generator: Generator<B>,
    vae: AutoencoderKl<B>,
    scorer: MobileFace<B>,
    device: B::Device,
}

/// Reports a stage to the caller's callback; [`ControlFlow::Break`] becomes
/// [`GenerateError::Cancelled`].
type Report<'a> = dyn FnMut(Stage) -> Result<(), GenerateError> + 'a;

fn read_text(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        file: path.to_path_buf(),
        source,
    })
}

fn strict_weights<B: Backend>(path: &Path, device: &B::Device) -> Result<Weights<B>, LoadError> {
    Weights::<B>::open(path, &KeyRemap::new(), LoadOptions::default(), device)
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
        let unet_config = match &files.unet_config {
            Some(path) => UNetConfig::from_json(&read_text(path)?)?,
            None => UNetConfig::sdxl(),
        };
        let vae_config = VaeConfig::from_json(&read_text(&files.vae_config)?)?;
        let (encoder, _) =
            FaceClipEncoder::from_checkpoint(&files.encoder, &FaceClipConfig::sdxl(), device)?;
        let unet_weights = strict_weights(&files.unet, device)?;
        let unet = UNet2DConditionModel::load(&unet_weights, unet_config)?;
        unet_weights.finish()?;
        let vae = Self::load_vae(&files.vae, vae_config, device)?;
        Self::assemble(Generator::Sdxl { encoder, unet }, vae, device)
    }

    /// Loads the released FaceT5-FLUX files (see [`FluxFiles::locate`]: FaceCLIP's
    /// `model/face_t5_encoder.pt`, `model/dit.pt`, and FLUX.1-dev's VAE and tokenizer) strictly,
    /// with the bundled face detector and scorer.
    pub fn from_pretrained_flux(
        dir: impl AsRef<Path>,
        flux_dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self, GenerateError> {
        let files = FluxFiles::locate(dir.as_ref(), flux_dir.as_ref())?;
        let transformer_config = match &files.transformer_config {
            Some(path) => FluxConfig::from_json(&read_text(path)?)?,
            None => FluxConfig::flux_dev(),
        };
        let vae_config = VaeConfig::from_json(&read_text(&files.vae_config)?)?;
        let tokenizer = T5Tokenizer::from_file(&files.t5_tokenizer)
            .map_err(|e| LoadError::Config(e.to_string()))?;
        let (encoder, _) = FaceT5FluxEncoder::from_checkpoint(
            &files.encoder,
            &FaceT5FluxConfig::released(),
            tokenizer,
            device,
        )?;
        let weights = strict_weights(&files.transformer, device)?;
        let transformer = FluxTransformer2DModel::load(&weights, transformer_config)?;
        weights.finish()?;
        let vae = Self::load_vae(&files.vae, vae_config, device)?;
        Self::assemble(
            Generator::Flux {
                encoder,
                transformer,
            },
            vae,
            device,
        )
    }

    /// FaceCLIP-SDXL at a small size with random weights (seeded, identical on every backend):
    /// the machinery runs end to end in seconds on a CPU, the images are noise.
    pub fn random_tiny(device: &B::Device, seed: u64) -> Result<Self, GenerateError> {
        let weights = Weights::<B>::seeded(device, seed);
        let encoder = FaceClipEncoder::load(&weights.pp("encoder"), &FaceClipConfig::tiny())?;
        let unet = UNet2DConditionModel::load(&weights.pp("unet"), tiny::tiny_unet_config())?;
        let vae = AutoencoderKl::load(&weights.pp("vae"), tiny::tiny_vae_config())?;
        Self::assemble(Generator::Sdxl { encoder, unet }, vae, device)
    }

    /// FaceT5-FLUX at a small size with random weights and the bundled tiny T5 tokenizer
    /// (seeded, identical on every backend); the images are noise.
    pub fn random_tiny_flux(device: &B::Device, seed: u64) -> Result<Self, GenerateError> {
        let weights = Weights::<B>::seeded(device, seed);
        let tokenizer = T5Tokenizer::tiny().map_err(|e| LoadError::Config(e.to_string()))?;
        let encoder =
            FaceT5FluxEncoder::load(&weights.pp("encoder"), &FaceT5FluxConfig::tiny(), tokenizer)?;
        let transformer =
            FluxTransformer2DModel::load(&weights.pp("transformer"), tiny::tiny_flux_config())?;
        let vae = AutoencoderKl::load(&weights.pp("vae"), tiny::tiny_flux_vae_config())?;
        Self::assemble(
            Generator::Flux {
                encoder,
                transformer,
            },
            vae,
            device,
        )
    }

    fn load_vae(
        path: &Path,
        config: VaeConfig,
        device: &B::Device,
    ) -> Result<AutoencoderKl<B>, LoadError> {
        let weights = strict_weights(path, device)?;
        let vae = AutoencoderKl::load(&weights, config)?;
        weights.finish()?;
        Ok(vae)
    }

    /// Checks that the parts fit each other, then adds the bundled aligner and scorer.
    fn assemble(
        generator: Generator<B>,
        vae: AutoencoderKl<B>,
        device: &B::Device,
    ) -> Result<Self, GenerateError> {
        if let Generator::Sdxl { unet, .. } = &generator {
            let (unet_in, latent) = (unet.config().in_channels, vae.latent_channels());
            if unet_in != latent {
                return Err(LoadError::Config(format!(
                    "the UNet reads {unet_in} latent channels, the VAE makes {latent}"
                ))
                .into());
            }
        }
        if let Generator::Flux {
            encoder,
            transformer,
        } = &generator
        {
            let c = transformer.config();
            let text_width = encoder.facet5().config().t5.d_model;
            let pooled_width = encoder.clip().config().width;
            let latent = vae.latent_channels();
            let mismatch = if c.joint_attention_dim != text_width {
                Some(format!(
                    "the FLUX transformer's joint_attention_dim {} differs from the FaceT5 width {text_width}",
                    c.joint_attention_dim
                ))
            } else if c.pooled_projection_dim != pooled_width {
                Some(format!(
                    "the FLUX transformer's pooled_projection_dim {} differs from the CLIP width {pooled_width}",
                    c.pooled_projection_dim
                ))
            } else if c.in_channels != 4 * latent || c.out_channels != 4 * latent {
                Some(format!(
                    "the FLUX transformer reads {} packed channels, the VAE's {latent} latent channels pack to {}",
                    c.in_channels,
                    4 * latent
                ))
            } else {
                None
            };
            if let Some(reason) = mismatch {
                return Err(LoadError::Config(reason).into());
            }
        }
        Ok(Self {
            aligner: FaceAligner::bundled(device)?,
            generator,
            vae,
            scorer: MobileFace::bundled(device)?,
            device: device.clone(),
        })
    }

    /// Which model this pipeline runs.
    pub fn model(&self) -> ModelKind {
        match self.generator {
            Generator::Sdxl { .. } => ModelKind::FaceClipSdxl,
            Generator::Flux { .. } => ModelKind::FaceT5Flux,
        }
    }

    /// A request with the reference settings of this pipeline's model.
    pub fn request(&self, face: FaceInput, prompt: impl Into<String>) -> GenerateRequest {
        GenerateRequest::for_model(self.model(), face, prompt)
    }

    /// The SDXL UNet (FaceCLIP-SDXL pipelines only).
    pub fn unet(&self) -> Option<&UNet2DConditionModel<B>> {
        match &self.generator {
            Generator::Sdxl { unet, .. } => Some(unet),
            Generator::Flux { .. } => None,
        }
    }

    /// The FLUX transformer (FaceT5-FLUX pipelines only).
    pub fn transformer(&self) -> Option<&FluxTransformer2DModel<B>> {
        match &self.generator {
            Generator::Flux { transformer, .. } => Some(transformer),
            Generator::Sdxl { .. } => None,
        }
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
        let multiple = match self.model() {
            ModelKind::FaceClipSdxl => downscale,
            ModelKind::FaceT5Flux => 2 * downscale,
        };
        request.validate(self.model(), multiple)?;
        let mut timings = StageTimings::default();
        let steps = request.steps;
        let mut report = |stage: Stage| match on_progress(stage) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(GenerateError::Cancelled {
                step: match stage {
                    Stage::Denoise { step, .. } => step,
                    _ => 0,
                },
                steps,
            }),
        };

        report(Stage::Align)?;
        let started = Instant::now();
        let reference_faces = self.reference_faces(&request.face)?;
        timings.align = started.elapsed();

        report(Stage::Encode)?;
        let crops = self.crops(&reference_faces)?;
        let latent_shape = [
            request.images,
            self.vae.latent_channels(),
            request.height / downscale,
            request.width / downscale,
        ];
        let noise = gaussian_noise::<B, 4>(request.seed, latent_shape, &self.device);
        let latents = match &self.generator {
            Generator::Sdxl { encoder, unet } => self.sample_sdxl(
                encoder,
                unet,
                crops,
                noise,
                request,
                &mut report,
                &mut timings,
            )?,
            Generator::Flux {
                encoder,
                transformer,
            } => self.sample_flux(
                encoder,
                transformer,
                crops,
                noise,
                request,
                &mut report,
                &mut timings,
            )?,
        };

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

    /// FaceCLIP-SDXL: encodes with the identity (or the face-absent branch), then denoises
    /// `noise` with CFG; returns the sampler's latents.
    #[allow(clippy::too_many_arguments)]
    fn sample_sdxl(
        &self,
        encoder: &FaceClipEncoder<B>,
        unet: &UNet2DConditionModel<B>,
        crops: Option<Tensor<B, 4>>,
        noise: Tensor<B, 4>,
        request: &GenerateRequest,
        report: &mut Report<'_>,
        timings: &mut StageTimings,
    ) -> Result<Tensor<B, 4>, GenerateError> {
        let started = Instant::now();
        let positive = match crops {
            Some(crops) => {
                encoder.encode_person(crops, &request.prompt, request.identity_strength)?
            }
            None => encoder.encode(self.blank_face(), &[&request.prompt], &[false])?,
        };
        let negative = encoder.encode_negative(&request.negative_prompt, &self.device)?;
        timings.encode = started.elapsed();

        let n = request.images;
        let (h, w) = (request.height as f32, request.width as f32);
        let conditioning = Conditioning {
            positive: positive.prompt_embeds.repeat_dim(0, n),
            positive_pooled: positive.pooled.repeat_dim(0, n),
            negative: negative.prompt_embeds.repeat_dim(0, n),
            negative_pooled: negative.pooled.repeat_dim(0, n),
            time_ids: [h, w, 0.0, 0.0, h, w],
        };
        let mut scheduler = request.scheduler.build::<B>();
        let started = Instant::now();
        let latents = with_step_reports(report, |on_step| {
            denoise(
                unet,
                scheduler.as_mut(),
                noise,
                &conditioning,
                request.steps,
                request.guidance,
                on_step,
            )
        })?;
        timings.denoise = started.elapsed();
        Ok(latents)
    }

    /// FaceT5-FLUX: encodes with FaceT5 + CLIP-L, packs `noise`, runs the flow-matching loop
    /// with true CFG, and unpacks; returns the sampler's latents.
    #[allow(clippy::too_many_arguments)]
    fn sample_flux(
        &self,
        encoder: &FaceT5FluxEncoder<B>,
        transformer: &FluxTransformer2DModel<B>,
        crops: Option<Tensor<B, 4>>,
        noise: Tensor<B, 4>,
        request: &GenerateRequest,
        report: &mut Report<'_>,
        timings: &mut StageTimings,
    ) -> Result<Tensor<B, 4>, GenerateError> {
        let started = Instant::now();
        let positive = match crops {
            Some(crops) => {
                encoder.encode_person(crops, &request.prompt, request.identity_strength)?
            }
            None => encoder.encode_person(self.blank_face(), &request.prompt, 1.0)?,
        };
        let n = request.images;
        let negative = if request.guidance > 1.0 {
            let negative = encoder.encode_negative(&request.negative_prompt, &self.device)?;
            Some((
                negative.embeds.repeat_dim(0, n),
                negative.pooled.repeat_dim(0, n),
            ))
        } else {
            None
        };
        timings.encode = started.elapsed();

        let conditioning = FluxConditioning {
            positive: positive.embeds.repeat_dim(0, n),
            positive_pooled: positive.pooled.repeat_dim(0, n),
            negative,
        };
        let [_, _, latent_h, latent_w] = noise.dims();
        let packed = pack_latents(noise)?;
        let guidance = FluxGuidance {
            true_cfg: request.guidance,
            distilled: request.distilled_guidance as f32,
        };
        let started = Instant::now();
        let packed = with_step_reports(report, |on_step| {
            denoise_flux(
                transformer,
                packed,
                [latent_h, latent_w],
                &conditioning,
                request.steps,
                guidance,
                on_step,
            )
        })?;
        timings.denoise = started.elapsed();
        Ok(unpack_latents(packed, latent_h, latent_w)?)
    }

    /// Cosine similarity of MobileFace identity embeddings between a reference crop and the
    /// largest face found in `image`; `None` when `image` shows no face.
    pub fn identity_similarity(
        &self,
        reference_face: &RgbImage,
        image: &RgbImage,
    ) -> Result<Option<f32>, GenerateError> {
        let mut scores = self.identity_similarities(reference_face, std::slice::from_ref(image))?;
        Ok(scores.pop().flatten())
    }

    /// [`identity_similarity`](Self::identity_similarity) of every image, embedding the
    /// reference once.
    pub fn identity_similarities(
        &self,
        reference_face: &RgbImage,
        images: &[RgbImage],
    ) -> Result<Vec<Option<f32>>, GenerateError> {
        let reference = self.scorer.embed(reference_face)?;
        images
            .iter()
            .map(|image| {
                let generated = match self.aligner.align(image, FaceSelection::Largest) {
                    Ok(face) => face.image,
                    Err(AlignError::NoFaceFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let embedding = self.scorer.embed(&generated)?;
                Ok(Some(identity_similarity(&reference, &embedding)?))
            })
            .collect()
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

    /// The crops as one `[N, 3, H, W]` tensor in `[0, 1]`, or `None` without a face.
    fn crops(&self, faces: &[RgbImage]) -> Result<Option<Tensor<B, 4>>, GenerateError> {
        if faces.is_empty() {
            return Ok(None);
        }
        let crops = faces
            .iter()
            .map(|f| rgb_to_tensor::<B>(f, &self.device).map(|t| t.unsqueeze_dim::<4>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Tensor::cat(crops, 0)))
    }

    /// The all-zero face of the reference's face-absent branch.
    fn blank_face(&self) -> Tensor<B, 4> {
        let size = faceclip_align::FACECLIP_CROP as usize;
        Tensor::zeros([1, 3, size, size], &self.device)
    }
}

/// Runs a denoising loop whose per-step callback forwards [`Stage::Denoise`] to `report`; a
/// cancellation by the caller comes back as its own [`GenerateError::Cancelled`].
fn with_step_reports<T>(
    report: &mut Report<'_>,
    run: impl FnOnce(&mut dyn FnMut(StepProgress) -> ControlFlow<()>) -> Result<T, DenoiseError>,
) -> Result<T, GenerateError> {
    let mut cancelled = None;
    let result = run(&mut |p| {
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
    });
    if let Some(e) = cancelled {
        return Err(e);
    }
    Ok(result?)
}

#[cfg(all(test, feature = "ndarray"))]
mod tests;
