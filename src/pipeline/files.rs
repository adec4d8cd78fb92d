//! Locating the released model files on disk.

use std::path::{Path, PathBuf};

use super::GenerateError;

/// The first existing file of `candidates`, or the first candidate recorded as missing.
fn need(candidates: &[PathBuf], missing: &mut Vec<PathBuf>) -> PathBuf {
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => found.clone(),
        None => {
            missing.push(candidates[0].clone());
            candidates[0].clone()
        }
    }
}

/// The first existing file of `candidates`.
fn optional(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}

/// Where [`Pipeline::from_pretrained`](super::Pipeline::from_pretrained) finds each file.
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
        let mut missing = Vec::new();
        let encoder = need(
            &[
                dir.join("model/face_clip_encoder.pt"),
                dir.join("model/face_clip_encoder.safetensors"),
            ],
            &mut missing,
        );
        let unet = need(
            &[
                dir.join("model/unet.pt"),
                dir.join("model/unet.safetensors"),
                dir.join("unet/diffusion_pytorch_model.safetensors"),
            ],
            &mut missing,
        );
        let vae = need(
            &[
                vae_dir.join("diffusion_pytorch_model.safetensors"),
                vae_dir.join("diffusion_pytorch_model.fp16.safetensors"),
            ],
            &mut missing,
        );
        let vae_config = need(&[vae_dir.join("config.json")], &mut missing);
        if !missing.is_empty() {
            return Err(GenerateError::MissingFiles(missing));
        }
        Ok(Self {
            encoder,
            unet,
            unet_config: optional(&[dir.join("unet/config.json"), dir.join("model/config.json")]),
            vae,
            vae_config,
        })
    }
}

/// Where [`Pipeline::from_pretrained_flux`](super::Pipeline::from_pretrained_flux) finds each
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxFiles {
    /// `model/face_t5_encoder.pt` (or a safetensors conversion).
    pub encoder: PathBuf,
    /// The T5 tokenizer: FaceCLIP's `model/tokenizer/tokenizer.json` or FLUX's
    /// `tokenizer_2/tokenizer.json`.
    pub t5_tokenizer: PathBuf,
    /// `model/dit.pt`, or FLUX.1-dev's `transformer/` weights (sharded index or single file).
    pub transformer: PathBuf,
    /// FLUX's `transformer/config.json` when present (FLUX.1-dev otherwise).
    pub transformer_config: Option<PathBuf>,
    /// FLUX's VAE weights (`vae/diffusion_pytorch_model.safetensors`).
    pub vae: PathBuf,
    /// FLUX's `vae/config.json`.
    pub vae_config: PathBuf,
}

impl FluxFiles {
    /// Finds the files under `dir` (FaceCLIP's release: `model/face_t5_encoder.pt`,
    /// `model/dit.pt`, `model/tokenizer/tokenizer.json`) and `flux_dir` (a FLUX.1-dev
    /// directory: `vae/`, `tokenizer_2/`, optionally `transformer/`). FaceCLIP's own files are
    /// preferred; every missing file is listed in the error.
    pub fn locate(dir: &Path, flux_dir: &Path) -> Result<Self, GenerateError> {
        let mut missing = Vec::new();
        let encoder = need(
            &[
                dir.join("model/face_t5_encoder.pt"),
                dir.join("model/face_t5_encoder.safetensors"),
            ],
            &mut missing,
        );
        let t5_tokenizer = need(
            &[
                dir.join("model/tokenizer/tokenizer.json"),
                flux_dir.join("tokenizer_2/tokenizer.json"),
            ],
            &mut missing,
        );
        let transformer = need(
            &[
                dir.join("model/dit.pt"),
                dir.join("model/dit.safetensors"),
                flux_dir.join("transformer/diffusion_pytorch_model.safetensors.index.json"),
                flux_dir.join("transformer/diffusion_pytorch_model.safetensors"),
            ],
            &mut missing,
        );
        let vae = need(
            &[flux_dir.join("vae/diffusion_pytorch_model.safetensors")],
            &mut missing,
        );
        let vae_config = need(&[flux_dir.join("vae/config.json")], &mut missing);
        if !missing.is_empty() {
            return Err(GenerateError::MissingFiles(missing));
        }
        Ok(Self {
            encoder,
            t5_tokenizer,
            transformer,
            transformer_config: optional(&[flux_dir.join("transformer/config.json")]),
            vae,
            vae_config,
        })
    }
}
