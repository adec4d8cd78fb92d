//! FaceT5-FLUX's text side (`FaceT5FluxWrapper`, spec §7): FLUX's CLIP-L gives the pooled
//! vector of the plain prompt; [`FaceT5Encoder`] fuses the T5 states of the prompt with the face
//! ViT's patch tokens into FLUX's `encoder_hidden_states [B, 512, 4096]`.
//!
//! FaceT5 (spec §7.2): T5 v1.1 XXL states (no mask, FAT5 names) are the fuser's text input with
//! fixed sinusoidal positions; `face_patch_proj(patches)` is its image input, without positions
//! (`face_pos_proj` is in the checkpoint but has no effect); the fuser's image-side layers attend
//! across the batch axis, so — as the reference script effectively does — every prompt is
//! encoded alone ([`FaceT5Encoder::forward`]); [`FaceT5Encoder::forward_joint`] reproduces the
//! reference's behaviour for a real batch. No identity prefix, no token swap; the ArcFace head is
//! computed and discarded, as in the reference.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Int, Tensor};
use faceclip_core::nn::{load_linear, Linear};
use faceclip_core::weights::{KeyRemap, LoadOptions, LoadReport, Weights};
use faceclip_core::{InputError, LoadError};
use faceclip_encoders::{
    ClipTokenizer, FaceVit, FaceVitConfig, T5Config, T5Encoder, T5Layout, T5Tokenizer, TextLayout,
    TextTower, TextTowerConfig,
};

use crate::encoder::EncodeError;
use crate::fuser::{FaceClipFuser, FuserConfig, ImageLayerKind};
use crate::prompt_cache::PromptCache;

/// The negative prompt of the reference FaceT5-FLUX script (spec §1.2).
pub const FLUX_NEGATIVE_PROMPT: &str = "digital painting, 3d render, CGI, cartoon, anime, unreal, stylized, overexposed, glossy skin, wearing mask, looking away from the camera, wearing glasses, wearing sunglasses, nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated, ugly, disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers, poorly drawn face, ugly eyes, imperfect eyes, deformed pupils, deformed iris, bad anatomy";

/// Sizes of [`FaceT5Encoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaceT5Config {
    /// The face ViT.
    pub face: FaceVitConfig,
    /// The T5 stack (its width is the fuser's).
    pub t5: T5Config,
    /// Key names of the T5 stack.
    pub t5_layout: T5Layout,
    /// The fuser (batch-axis image layers).
    pub fuser: FuserConfig,
    /// Length of the sinusoidal position table (512): the longest token sequence.
    pub max_length: usize,
}

impl FaceT5Config {
    /// The released FaceT5: ArcFace ViT-L, T5 v1.1 XXL (FAT5 names), fuser width 4096, 512 tokens.
    pub fn released() -> Self {
        Self {
            face: FaceVitConfig::arcface_vit_l(),
            t5: T5Config::v1_1_xxl(),
            t5_layout: T5Layout::Fat5,
            fuser: FuserConfig::facet5(),
            max_length: 512,
        }
    }

    /// A tiny FaceT5 for tests and demos: width 32, two T5 blocks (vocabulary 187, the bundled
    /// tiny tokenizer's), a one-block face ViT, a two-layer fuser.
    pub fn tiny() -> Self {
        Self {
            face: FaceVitConfig::sized(32, 1, 2, 24),
            t5: T5Config {
                vocab_size: 187,
                ..T5Config::sized(32, 8, 4, 48, 2)
            },
            t5_layout: T5Layout::Fat5,
            fuser: FuserConfig {
                layers: 2,
                image_layer: ImageLayerKind::BatchAxis,
                ..FuserConfig::with_ffn(32, 64)
            },
            max_length: 512,
        }
    }

    /// Checks the parts fit together.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.fuser.d_model != self.t5.d_model {
            return Err(LoadError::Config(format!(
                "FaceT5 fuser width {} differs from the T5 width {}",
                self.fuser.d_model, self.t5.d_model
            )));
        }
        if self.fuser.image_layer != ImageLayerKind::BatchAxis {
            return Err(LoadError::Config(
                "FaceT5's fuser uses batch-axis image layers".into(),
            ));
        }
        if self.face.tokens() != self.fuser.grid[0] * self.fuser.grid[1] || self.max_length == 0 {
            return Err(LoadError::Config(format!(
                "FaceT5: {} face tokens for a {:?} grid, max length {}",
                self.face.tokens(),
                self.fuser.grid,
                self.max_length
            )));
        }
        Ok(())
    }
}

/// FaceT5's identity–text encoder (keys `face_encoder.*`, `t5_encoder.*`, `face_patch_proj`,
/// `positional_embedding`, `fuser.*` under `encoder_2`).
#[derive(Module, Debug)]
pub struct FaceT5Encoder<B: Backend> {
    face_encoder: FaceVit<B>,
    t5_encoder: T5Encoder<B>,
    face_patch_proj: Linear<B>,
    /// `[1, max_length, d]`, stored in the checkpoint.
    positional_embedding: Param<Tensor<B, 3>>,
    fuser: FaceClipFuser<B>,
    #[module(skip)]
    config: FaceT5Config,
}

impl<B: Backend> FaceT5Encoder<B> {
    /// Builds the encoder from its scope (`encoder_2` in `face_t5_encoder.pt`).
    pub fn load(vb: &Weights<B>, c: &FaceT5Config) -> Result<Self, LoadError> {
        c.validate()?;
        let d = c.t5.d_model;
        Ok(Self {
            face_encoder: FaceVit::load(&vb.pp("face_encoder"), c.face.clone())?,
            t5_encoder: T5Encoder::load(&vb.pp("t5_encoder"), c.t5.clone(), c.t5_layout)?,
            face_patch_proj: load_linear(&vb.pp("face_patch_proj"), c.face.width, d, true)?,
            positional_embedding: Param::from_tensor(
                vb.tensor("positional_embedding", [1, c.max_length, d])?,
            ),
            fuser: FaceClipFuser::load(&vb.pp("fuser"), &c.fuser)?,
            config: c.clone(),
        })
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &FaceT5Config {
        &self.config
    }

    /// The face ViT's patch tokens `[N, 144, w_face]` of aligned crops `[N, 3, H, W]` (RGB in
    /// `[0, 1]`).
    pub fn face_features(&self, faces: Tensor<B, 4>) -> Result<Tensor<B, 3>, InputError> {
        Ok(self.face_encoder.forward(faces)?.patch_tokens)
    }

    /// Encodes T5 ids `[B, S]` (`S ≤ 512`) with face crops `[B, 3, H, W]`, each sample alone
    /// (batch 1, as the reference runs): `[B, S, d]`.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        faces: Tensor<B, 4>,
    ) -> Result<Tensor<B, 3>, InputError> {
        let patches = self.face_features(faces)?;
        self.forward_features(ids, patches)
    }

    /// [`forward`](Self::forward) from precomputed patch tokens `[B, 144, w_face]`.
    pub fn forward_features(
        &self,
        ids: Tensor<B, 2, Int>,
        patches: Tensor<B, 3>,
    ) -> Result<Tensor<B, 3>, InputError> {
        let batch = self.check(&ids, &patches)?;
        let outputs = (0..batch)
            .map(|b| self.run(ids.clone().narrow(0, b, 1), patches.clone().narrow(0, b, 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(outputs, 0))
    }

    /// Encodes the whole batch at once, as the reference would if called with `B > 1`: the
    /// fuser's image layers then mix the face tokens of different samples (spec §7.2 quirk 2).
    pub fn forward_joint(
        &self,
        ids: Tensor<B, 2, Int>,
        faces: Tensor<B, 4>,
    ) -> Result<Tensor<B, 3>, InputError> {
        let patches = self.face_features(faces)?;
        self.check(&ids, &patches)?;
        self.run(ids, patches)
    }

    fn check(&self, ids: &Tensor<B, 2, Int>, patches: &Tensor<B, 3>) -> Result<usize, InputError> {
        let [batch, seq] = ids.dims();
        let max = self.positional_embedding.dims()[1];
        if seq == 0 || seq > max || batch != patches.dims()[0] {
            return Err(InputError::Shape {
                what: "FaceT5 token ids".into(),
                expected: format!("[{}, 1..={max}] (one row per face)", patches.dims()[0]),
                found: vec![batch, seq],
            });
        }
        Ok(batch)
    }

    fn run(
        &self,
        ids: Tensor<B, 2, Int>,
        patches: Tensor<B, 3>,
    ) -> Result<Tensor<B, 3>, InputError> {
        let seq = ids.dims()[1];
        let text = self.t5_encoder.forward(ids)?;
        let face = self.face_patch_proj.forward(patches);
        let pos_l = self.positional_embedding.val().narrow(1, 0, seq);
        // The image layers never see face positions; the fuser's argument is unused for them.
        let no_positions = face.clone().narrow(0, 0, 1).zeros_like();
        self.fuser.forward(text, pos_l, face, no_positions)
    }
}

/// Sizes of the whole FaceT5-FLUX text side.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceT5FluxConfig {
    /// FLUX's CLIP-L text model (Hugging Face layout, pooled output only).
    pub clip: TextTowerConfig,
    /// FaceT5.
    pub facet5: FaceT5Config,
}

impl FaceT5FluxConfig {
    /// The released `face_t5_encoder.pt`: OpenAI CLIP-L/14 text model and FaceT5 (4096 wide).
    pub fn released() -> Self {
        Self {
            clip: TextTowerConfig::clip_vit_l_14_hf(),
            facet5: FaceT5Config::released(),
        }
    }

    /// Tiny sizes for tests and demos: CLIP width 32 (two layers, two heads) and
    /// [`FaceT5Config::tiny`]; embeddings 32 wide, pooled vector 32.
    pub fn tiny() -> Self {
        Self {
            clip: TextTowerConfig {
                layout: TextLayout::HuggingFace,
                mlp_width: 64,
                ..TextTowerConfig::sized(32, 2, 2, faceclip_core::nn::Activation::QuickGelu)
            },
            facet5: FaceT5Config::tiny(),
        }
    }
}

/// FLUX conditioning for one prompt.
#[derive(Debug, Clone)]
pub struct FluxTextOutput<B: Backend> {
    /// `[1, 512, d]`: FaceT5's fused text stream (FLUX's `encoder_hidden_states`).
    pub embeds: Tensor<B, 3>,
    /// `[1, w_clip]`: CLIP-L's pooled EOT state (FLUX's `pooled_projections`).
    pub pooled: Tensor<B, 2>,
}

/// `FaceT5FluxWrapper`: keys `encoder_1.text_model.*` (CLIP-L) and `encoder_2.*` (FaceT5), with
/// both tokenizers.
#[derive(Debug)]
pub struct FaceT5FluxEncoder<B: Backend> {
    clip: TextTower<B>,
    facet5: FaceT5Encoder<B>,
    clip_tokenizer: ClipTokenizer,
    t5_tokenizer: T5Tokenizer,
    negative_cache: PromptCache<FluxTextOutput<B>>,
}

impl<B: Backend> FaceT5FluxEncoder<B> {
    /// Builds the encoder from a scope holding `encoder_1.*` and `encoder_2.*`, with the T5
    /// tokenizer (FLUX's `tokenizer_2/tokenizer.json`); its length must match FaceT5's table.
    pub fn load(
        vb: &Weights<B>,
        config: &FaceT5FluxConfig,
        t5_tokenizer: T5Tokenizer,
    ) -> Result<Self, LoadError> {
        if config.clip.layout != TextLayout::HuggingFace {
            return Err(LoadError::Config(
                "FLUX's CLIP-L text model uses the Hugging Face layout".into(),
            ));
        }
        let clip_tokenizer = ClipTokenizer::hf().map_err(|e| LoadError::Config(e.to_string()))?;
        let t5_tokenizer = t5_tokenizer.with_max_length(config.facet5.max_length);
        Ok(Self {
            clip: TextTower::load(&vb.pp("encoder_1"), config.clip.clone())?,
            facet5: FaceT5Encoder::load(&vb.pp("encoder_2"), &config.facet5)?,
            clip_tokenizer,
            t5_tokenizer,
            negative_cache: PromptCache::new(),
        })
    }

    /// Loads the released `face_t5_encoder.pt` (or a safetensors conversion) strictly; only the
    /// unused tensors (`face_pos_proj`, `enc_output*`, BatchNorm counters, CLIP `position_ids`)
    /// may stay unread.
    pub fn from_checkpoint(
        path: impl AsRef<std::path::Path>,
        config: &FaceT5FluxConfig,
        t5_tokenizer: T5Tokenizer,
        device: &B::Device,
    ) -> Result<(Self, LoadReport), LoadError> {
        let vb = Weights::open(path, &KeyRemap::new(), LoadOptions::default(), device)?;
        let encoder = Self::load(&vb, config, t5_tokenizer)?;
        let report = vb.finish()?;
        Ok((encoder, report))
    }

    /// FaceT5 alone.
    pub fn facet5(&self) -> &FaceT5Encoder<B> {
        &self.facet5
    }

    /// The CLIP-L text model alone.
    pub fn clip(&self) -> &TextTower<B> {
        &self.clip
    }

    /// The T5 tokenizer.
    pub fn t5_tokenizer(&self) -> &T5Tokenizer {
        &self.t5_tokenizer
    }

    /// Encodes `prompt` for the face in aligned crops `[N, 3, H, W]` (RGB in `[0, 1]`), as the
    /// reference does for one crop. Beyond the reference, as in the SDXL encoder: several crops
    /// of one person average their patch tokens, and identity strength `s ∈ [0, 2]` gives
    /// `e = e_blank + s·(e_face − e_blank)` for the embeddings, `e_blank` being the prompt with
    /// an all-zero face (`s = 1` is the reference and skips `e_blank`). The pooled vector does not
    /// depend on the face.
    pub fn encode_person(
        &self,
        faces: Tensor<B, 4>,
        prompt: &str,
        strength: f64,
    ) -> Result<FluxTextOutput<B>, EncodeError> {
        if !(0.0..=2.0).contains(&strength) {
            return Err(EncodeError::Strength(strength));
        }
        let [n, c, h, w] = faces.dims();
        if n == 0 {
            return Err(EncodeError::BatchMismatch {
                faces: 0,
                prompts: 1,
                flags: 1,
            });
        }
        let device = faces.device();
        let patches = self.facet5.face_features(faces)?.mean_dim(0);
        let ids = self.t5_tokenizer.tokenize_batch(&[prompt], &device)?;
        let embeds = self.facet5.forward_features(ids.clone(), patches)?;
        let embeds = if strength == 1.0 {
            embeds
        } else {
            let blank = self
                .facet5
                .forward(ids, Tensor::zeros([1, c, h, w], &device))?;
            blank.clone() + (embeds - blank) * strength
        };
        Ok(FluxTextOutput {
            embeds,
            pooled: self.pooled(prompt, &device)?,
        })
    }

    /// The reference's negative conditioning: `negative_prompt` with an all-zero face. Cached
    /// while the prompt stays the same.
    pub fn encode_negative(
        &self,
        negative_prompt: &str,
        device: &B::Device,
    ) -> Result<FluxTextOutput<B>, EncodeError> {
        self.negative_cache.get_or_encode(negative_prompt, || {
            let size = 112;
            self.encode_person(
                Tensor::zeros([1, 3, size, size], device),
                negative_prompt,
                1.0,
            )
        })
    }

    /// CLIP-L's pooled vector `[1, w_clip]` of the plain prompt (padded with EOT, truncated to
    /// 77 tokens as FLUX's `tokenizer` does).
    pub fn pooled(&self, prompt: &str, device: &B::Device) -> Result<Tensor<B, 2>, EncodeError> {
        let ids = self.clip_tokenizer.tokenize_batch::<B>(&[prompt], device)?;
        Ok(self.clip.forward(ids, None)?.pooled)
    }
}
