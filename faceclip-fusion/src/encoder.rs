//! The FaceCLIP-SDXL identity–text encoder (`FaceCLIP_L_G_Wrapper`): two branches (CLIP-L and
//! CLIP-bigG), each with its own face ViT, projections and fuser, concatenated into SDXL's
//! `prompt_embeds [B, 77, 2048]` and `pooled [B, 1280]`.
//!
//! Per branch (spec §1.3–§5): the face crop gives an identity vector and patch tokens; for a
//! face-present sample the prompt is prefixed with `"Photo of a id person. "` and the embedding
//! of its `id` token is replaced by `proj1(identity / ‖identity‖)`; the text tower's final
//! states and the face patches (each with projected positions) go through the fuser, whose text
//! stream is the branch output. The pooled vector is the bigG tower's EOT state.

use burn::module::Module;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use faceclip_core::nn::{load_linear, Activation, Linear};
use faceclip_core::weights::{KeyRemap, LoadOptions, LoadReport, Weights};
use faceclip_core::{InputError, LoadError};
use faceclip_encoders::{
    ClipTokenizer, FaceVit, FaceVitConfig, TextTower, TextTowerConfig, TokenOverride,
    TokenizerError,
};

use crate::fusion::{AnyFusion, Fusion, FusionInput, FusionKind};
use crate::prompt_cache::PromptCache;
use crate::FuserConfig;

/// The text prepended to the prompt of a face-present sample (sic: "a id").
pub const ID_PREFIX: &str = "Photo of a id person. ";
/// Token id of `id`, whose embedding carries the identity.
pub const ID_TOKEN: u32 = 1014;
/// The negative prompt of the reference FaceCLIP-SDXL script.
pub const SDXL_NEGATIVE_PROMPT: &str = "nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated, ugly, disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers, poorly drawn face, ugly eyes, imperfect eyes, deformed pupils, deformed iris, bad anatomy";

/// Errors of [`FaceClipEncoder::encode`].
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A tensor or image input was rejected.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The identity strength must lie in `[0, 2]`.
    #[error("identity strength {0} is outside [0, 2]")]
    Strength(f64),
    /// Faces, prompts and presence flags must come in equal numbers.
    #[error(
        "batch mismatch: {faces} face image(s), {prompts} prompt(s), {flags} presence flag(s)"
    )]
    BatchMismatch {
        /// Face images in the batch.
        faces: usize,
        /// Prompts given.
        prompts: usize,
        /// Presence flags given.
        flags: usize,
    },
}

/// Sizes of one branch.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchConfig {
    /// The text tower.
    pub text: TextTowerConfig,
    /// The face ViT.
    pub face: FaceVitConfig,
    /// The fusion module (FaceCLIP's fuser for the released weights; its width must equal the
    /// text width).
    pub fuser: FusionKind,
}

impl BranchConfig {
    /// The released L branch (`face_clip_l`): CLIP ViT-L/14 QuickGELU text, width 768.
    pub fn faceclip_l() -> Self {
        Self {
            text: TextTowerConfig::vit_l_14_quickgelu(),
            face: FaceVitConfig::arcface_vit_l(),
            fuser: FusionKind::FaceClip(FuserConfig::faceclip(768)),
        }
    }

    /// The released bigG branch (`face_clip_g`): CLIP ViT-bigG/14 GELU text, width 1280.
    pub fn faceclip_g() -> Self {
        Self {
            text: TextTowerConfig::vit_bigg_14(),
            face: FaceVitConfig::arcface_vit_l(),
            fuser: FusionKind::FaceClip(FuserConfig::faceclip(1280)),
        }
    }
}

/// Outputs of one branch.
#[derive(Debug, Clone)]
pub struct BranchOutput<B: Backend> {
    /// `[B, 77, w]`: the fuser's text stream.
    pub fused: Tensor<B, 3>,
    /// `[B, w]`: the tower's EOT state (no projection).
    pub pooled: Tensor<B, 2>,
}

/// One FaceCLIP branch (`TextImageBranch`): keys at the branch root (the text tower's),
/// `face_encoder.*`, `proj1`, `face_patch_proj`, `face_pos_proj`, `text_embed_proj`,
/// `text_pos_proj`, `fuser.*`.
#[derive(Module, Debug)]
pub struct FaceClipBranch<B: Backend> {
    text: TextTower<B>,
    face_encoder: FaceVit<B>,
    proj1: Linear<B>,
    face_patch_proj: Linear<B>,
    face_pos_proj: Linear<B>,
    text_embed_proj: Linear<B>,
    text_pos_proj: Linear<B>,
    fuser: AnyFusion<B>,
}

impl<B: Backend> FaceClipBranch<B> {
    /// Builds a branch from its checkpoint scope (`face_clip_l` or `face_clip_g`).
    pub fn load(vb: &Weights<B>, c: &BranchConfig) -> Result<Self, LoadError> {
        let w = c.text.width;
        let face_width = c.face.width;
        Ok(Self {
            text: TextTower::load(vb, c.text.clone())?,
            face_encoder: FaceVit::load(&vb.pp("face_encoder"), c.face.clone())?,
            proj1: load_linear(&vb.pp("proj1"), c.face.embedding_dim, w, true)?,
            face_patch_proj: load_linear(&vb.pp("face_patch_proj"), face_width, w, true)?,
            face_pos_proj: load_linear(&vb.pp("face_pos_proj"), face_width, w, true)?,
            text_embed_proj: load_linear(&vb.pp("text_embed_proj"), w, w, true)?,
            text_pos_proj: load_linear(&vb.pp("text_pos_proj"), w, w, true)?,
            fuser: AnyFusion::load(&vb.pp("fuser"), &c.fuser, w, c.face.embedding_dim)?,
        })
    }

    /// The face ViT's outputs for crops `[N, 3, H, W]`: the L2-normalised identity `[N, d_id]`
    /// and the patch tokens `[N, 144, 768]`.
    pub fn face_features(
        &self,
        images: Tensor<B, 4>,
    ) -> Result<(Tensor<B, 2>, Tensor<B, 3>), InputError> {
        let face = self.face_encoder.forward(images)?;
        Ok((l2_normalize(face.identity), face.patch_tokens))
    }

    /// Encodes token ids `[B, 77]` with the identity-token mask `[B, 77]` and face crops
    /// `[B, 3, H, W]` (RGB in `[0, 1]`, any size).
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        id_mask: Tensor<B, 2, Bool>,
        images: Tensor<B, 4>,
    ) -> Result<BranchOutput<B>, InputError> {
        let (identity, patches) = self.face_features(images)?;
        self.forward_features(ids, id_mask, identity, patches)
    }

    /// [`forward`](Self::forward) from precomputed face features (normalised identity
    /// `[B, d_id]`, patch tokens `[B, 144, 768]`).
    pub fn forward_features(
        &self,
        ids: Tensor<B, 2, Int>,
        id_mask: Tensor<B, 2, Bool>,
        identity: Tensor<B, 2>,
        patches: Tensor<B, 3>,
    ) -> Result<BranchOutput<B>, InputError> {
        let face_token = self.proj1.forward(identity.clone());
        let text = self.text.forward(
            ids,
            Some(&TokenOverride {
                mask: id_mask,
                embeddings: face_token,
            }),
        )?;
        let fused = self.fuser.fuse(FusionInput {
            text: self.text_embed_proj.forward(text.hidden),
            text_pos: self
                .text_pos_proj
                .forward(self.text.positional_embedding())
                .unsqueeze_dim(0),
            face: self.face_patch_proj.forward(patches),
            face_pos: self.face_pos_proj.forward(self.face_encoder.pos_embed()),
            identity,
        })?;
        Ok(BranchOutput {
            fused,
            pooled: text.pooled,
        })
    }
}

/// `x / max(‖x‖₂, 1e-12)` per row, as `torch.nn.functional.normalize`.
fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

/// Token ids and identity-token masks of a batch of prompts, `[batch][77]` each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids (prefixed prompt for face-present samples).
    pub ids: Vec<Vec<u32>>,
    /// Where the identity embedding replaces the token embedding.
    pub id_mask: Vec<Vec<bool>>,
}

/// Sizes of the whole encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceClipConfig {
    /// The `face_clip_l` branch.
    pub l: BranchConfig,
    /// The `face_clip_g` branch (its pooled state is SDXL's pooled embedding).
    pub g: BranchConfig,
}

impl FaceClipConfig {
    /// The released FaceCLIP-SDXL encoder (1.57 B parameters).
    pub fn sdxl() -> Self {
        Self {
            l: BranchConfig::faceclip_l(),
            g: BranchConfig::faceclip_g(),
        }
    }

    /// A tiny encoder for tests and demos with random weights: text widths 16 (L, QuickGELU)
    /// and 24 (G, GELU), two text layers, a one-block face ViT, a two-layer fuser; its
    /// `prompt_embeds` are 40 wide and its pooled vector 24.
    pub fn tiny() -> Self {
        let branch = |width, heads, activation| BranchConfig {
            text: TextTowerConfig::sized(width, 2, heads, activation),
            face: FaceVitConfig::sized(32, 1, 2, 24),
            fuser: FusionKind::FaceClip(FuserConfig {
                layers: 2,
                ..FuserConfig::with_ffn(width, 32)
            }),
        };
        Self {
            l: branch(16, 2, Activation::QuickGelu),
            g: branch(24, 3, Activation::Gelu),
        }
    }
}

/// SDXL conditioning produced by the encoder.
#[derive(Debug, Clone)]
pub struct FaceClipOutput<B: Backend> {
    /// `[B, 77, w_L + w_G]` (2048 released): L and bigG fused text states, concatenated.
    pub prompt_embeds: Tensor<B, 3>,
    /// `[B, w_G]` (1280 released): the bigG EOT state.
    pub pooled: Tensor<B, 2>,
}

/// FaceCLIP's identity–text encoder for SDXL.
#[derive(Debug)]
pub struct FaceClipEncoder<B: Backend> {
    l: FaceClipBranch<B>,
    g: FaceClipBranch<B>,
    tokenizer: ClipTokenizer,
    /// Positions (from the start) in which an `id` token is the identity token: the prefix's
    /// non-padding length minus one (7).
    prefix_positions: usize,
    /// The last negative prompt and its encoding.
    negative_cache: PromptCache<FaceClipOutput<B>>,
}

impl<B: Backend> FaceClipEncoder<B> {
    /// Builds the encoder from a scope holding `face_clip_l.*` and `face_clip_g.*`.
    pub fn load(vb: &Weights<B>, config: &FaceClipConfig) -> Result<Self, LoadError> {
        let tokenizer = ClipTokenizer::openclip().map_err(|e| LoadError::Config(e.to_string()))?;
        let prefix = tokenizer
            .tokenize(ID_PREFIX)
            .map_err(|e| LoadError::Config(e.to_string()))?;
        let prefix_positions = prefix.iter().filter(|&&id| id != 0).count() - 1;
        Ok(Self {
            l: FaceClipBranch::load(&vb.pp("face_clip_l"), &config.l)?,
            g: FaceClipBranch::load(&vb.pp("face_clip_g"), &config.g)?,
            tokenizer,
            prefix_positions,
            negative_cache: PromptCache::new(),
        })
    }

    /// Loads the released `face_clip_encoder.pt` (or a safetensors conversion) strictly: every
    /// `model.` substring is removed from the keys and only the training-only tensors may stay
    /// unused.
    pub fn from_checkpoint(
        path: impl AsRef<std::path::Path>,
        config: &FaceClipConfig,
        device: &B::Device,
    ) -> Result<(Self, LoadReport), LoadError> {
        let vb = Weights::open(path, &KeyRemap::faceclip(), LoadOptions::default(), device)?;
        let encoder = Self::load(&vb, config)?;
        let report = vb.finish()?;
        Ok((encoder, report))
    }

    /// The token ids of each prompt (prefixed when its face is present) and the identity-token
    /// mask: `id` tokens within the prefix of face-present samples (an `id` in the user's
    /// prompt is never replaced).
    pub fn tokenize(
        &self,
        prompts: &[&str],
        face_present: &[bool],
    ) -> Result<Tokenized, TokenizerError> {
        let mut ids = Vec::with_capacity(prompts.len());
        let mut masks = Vec::with_capacity(prompts.len());
        for (prompt, &present) in prompts.iter().zip(face_present) {
            let text = if present {
                format!("{ID_PREFIX}{prompt}")
            } else {
                prompt.to_string()
            };
            let tokens = self.tokenizer.tokenize(&text)?;
            let mask = tokens
                .iter()
                .enumerate()
                .map(|(t, &id)| present && t < self.prefix_positions && id == ID_TOKEN)
                .collect();
            ids.push(tokens);
            masks.push(mask);
        }
        Ok(Tokenized {
            ids,
            id_mask: masks,
        })
    }

    /// Encodes aligned face crops `[B, 3, H, W]` (RGB in `[0, 1]`, resized to 112² inside) with
    /// one prompt and one presence flag per sample, exactly as the reference. A face-absent
    /// sample (the negative branch) should carry an all-zero image, as the reference does.
    pub fn encode(
        &self,
        images: Tensor<B, 4>,
        prompts: &[&str],
        face_present: &[bool],
    ) -> Result<FaceClipOutput<B>, EncodeError> {
        let batch = images.dims()[0];
        if batch != prompts.len() || batch != face_present.len() || batch == 0 {
            return Err(EncodeError::BatchMismatch {
                faces: batch,
                prompts: prompts.len(),
                flags: face_present.len(),
            });
        }
        let features = [
            self.l.face_features(images.clone())?,
            self.g.face_features(images)?,
        ];
        self.encode_features(features, prompts, face_present)
    }

    /// Encodes `prompt` for the person shown in one or more aligned crops `[N, 3, H, W]`, with
    /// identity strength `s ∈ [0, 2]` (beyond the reference):
    ///
    /// - several photos: per branch the L2-normalised identity vectors are averaged and
    ///   re-normalised and the patch tokens averaged (one photo is used as is);
    /// - `e = e_text + s·(e_face − e_text)`, for `prompt_embeds` and `pooled`, where `e_text`
    ///   encodes the same prompt with the face absent (zero image, no prefix). `s = 1`
    ///   reproduces the reference exactly and skips `e_text`.
    ///
    /// Output batch is 1.
    pub fn encode_person(
        &self,
        photos: Tensor<B, 4>,
        prompt: &str,
        strength: f64,
    ) -> Result<FaceClipOutput<B>, EncodeError> {
        if !(0.0..=2.0).contains(&strength) {
            return Err(EncodeError::Strength(strength));
        }
        let [n, c, h, w] = photos.dims();
        if n == 0 {
            return Err(EncodeError::BatchMismatch {
                faces: 0,
                prompts: 1,
                flags: 1,
            });
        }
        let person =
            |branch: &FaceClipBranch<B>| -> Result<(Tensor<B, 2>, Tensor<B, 3>), EncodeError> {
                let (identity, patches) = branch.face_features(photos.clone())?;
                if n == 1 {
                    return Ok((identity, patches));
                }
                Ok((l2_normalize(identity.mean_dim(0)), patches.mean_dim(0)))
            };
        let face =
            self.encode_features([person(&self.l)?, person(&self.g)?], &[prompt], &[true])?;
        if strength == 1.0 {
            return Ok(face);
        }
        let blank = Tensor::<B, 4>::zeros([1, c, h, w], &photos.device());
        let text = self.encode(blank, &[prompt], &[false])?;
        let mix = |t: Tensor<B, 3>, f: Tensor<B, 3>| t.clone() + (f - t) * strength;
        Ok(FaceClipOutput {
            prompt_embeds: mix(text.prompt_embeds, face.prompt_embeds),
            pooled: mix(text.pooled.unsqueeze_dim(0), face.pooled.unsqueeze_dim(0)).squeeze_dim(0),
        })
    }

    /// The negative conditioning of the reference (all-zero face, face absent, `negative_prompt`).
    /// It depends only on the prompt, so the encoding of the last negative prompt is cached and
    /// returned again while the prompt stays the same.
    pub fn encode_negative(
        &self,
        negative_prompt: &str,
        device: &B::Device,
    ) -> Result<FaceClipOutput<B>, EncodeError> {
        self.negative_cache.get_or_encode(negative_prompt, || {
            let size = 112;
            self.encode(
                Tensor::zeros([1, 3, size, size], device),
                &[negative_prompt],
                &[false],
            )
        })
    }

    /// Runs both branches on precomputed `[L, G]` face features.
    fn encode_features(
        &self,
        features: [(Tensor<B, 2>, Tensor<B, 3>); 2],
        prompts: &[&str],
        face_present: &[bool],
    ) -> Result<FaceClipOutput<B>, EncodeError> {
        let batch = prompts.len();
        let Tokenized {
            ids,
            id_mask: masks,
        } = self.tokenize(prompts, face_present)?;
        let device = features[0].0.device();
        let seq = self.tokenizer.context_length();
        let ids: Vec<i64> = ids.into_iter().flatten().map(i64::from).collect();
        let masks: Vec<bool> = masks.into_iter().flatten().collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
        let masks = Tensor::<B, 2, Bool>::from_data(TensorData::new(masks, [batch, seq]), &device);
        let [(l_id, l_patches), (g_id, g_patches)] = features;
        let l = self
            .l
            .forward_features(ids.clone(), masks.clone(), l_id, l_patches)?;
        let g = self.g.forward_features(ids, masks, g_id, g_patches)?;
        Ok(FaceClipOutput {
            prompt_embeds: Tensor::cat(vec![l.fused, g.fused], 2),
            pooled: g.pooled,
        })
    }
}
