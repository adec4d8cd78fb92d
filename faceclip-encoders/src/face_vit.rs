//! The ArcFace face ViT (InsightFace `vit_l`, as frozen inside FaceCLIP): a face crop in
//! `[0, 1]` → 512-d identity vector and the 12×12 grid of patch tokens.
//!
//! Input of any size is first resized to 112×112 with PyTorch's half-pixel, non-antialiased
//! bilinear rule; the 9×9 patch convolution then sees only the top-left 108×108 pixels.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::image::check_rgb_batch;
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{
    conv_forward, load_conv2d, load_layer_norm, load_linear, merge_heads, resize_bilinear, sdpa,
    Activation, BatchNorm1dEval, Linear,
};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

/// Shape of the face ViT.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceVitConfig {
    /// Side of the square image the trunk sees (112).
    pub image_size: usize,
    /// Side of a patch (9).
    pub patch_size: usize,
    /// Token width (768).
    pub width: usize,
    /// Number of blocks (24).
    pub depth: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Hidden width of the MLP (3072).
    pub mlp_width: usize,
    /// Width of the identity vector (512).
    pub embedding_dim: usize,
    /// LayerNorm epsilon (1e-5).
    pub eps: f64,
    /// BatchNorm epsilon of the head (2e-5).
    pub batch_norm_eps: f64,
}

impl FaceVitConfig {
    /// The ArcFace ViT-L of FaceCLIP: 112², patch 9, 768 wide, 24 blocks, 8 heads, 512-d identity.
    pub fn arcface_vit_l() -> Self {
        Self::sized(768, 24, 8, 512)
    }

    /// A 112²/patch-9 face ViT of any width, depth, heads and identity size (MLP 4×width).
    pub fn sized(width: usize, depth: usize, heads: usize, embedding_dim: usize) -> Self {
        Self {
            image_size: 112,
            patch_size: 9,
            width,
            depth,
            heads,
            mlp_width: 4 * width,
            embedding_dim,
            eps: 1e-5,
            batch_norm_eps: 2e-5,
        }
    }

    /// Patches per side (`image_size / patch_size`, rounded down: 12).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Number of patch tokens (144).
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Checks the configuration is buildable.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.patch_size == 0 || self.grid() == 0 {
            return Err(LoadError::Config(format!(
                "patch {} does not fit image {}",
                self.patch_size, self.image_size
            )));
        }
        if self.width == 0 || self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return Err(LoadError::Config(format!(
                "face ViT width {} must be a positive multiple of heads {}",
                self.width, self.heads
            )));
        }
        if self.embedding_dim == 0 || self.mlp_width == 0 {
            return Err(LoadError::Config(
                "face ViT MLP and identity sizes must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Pre-LN ViT block: `x += proj(attn(qkv(norm1(x))))`, `x += fc2(relu6(fc1(norm2(x))))`.
#[derive(Module, Debug)]
pub struct FaceVitBlock<B: Backend> {
    norm1: LayerNorm<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    norm2: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    heads: usize,
}

impl<B: Backend> FaceVitBlock<B> {
    fn load(vb: &Weights<B>, c: &FaceVitConfig) -> Result<Self, LoadError> {
        Ok(Self {
            norm1: load_layer_norm(&vb.pp("norm1"), c.width, c.eps)?,
            qkv: load_linear(&vb.pp("attn").pp("qkv"), c.width, 3 * c.width, false)?,
            proj: load_linear(&vb.pp("attn").pp("proj"), c.width, c.width, true)?,
            norm2: load_layer_norm(&vb.pp("norm2"), c.width, c.eps)?,
            fc1: load_linear(&vb.pp("mlp").pp("fc1"), c.width, c.mlp_width, true)?,
            fc2: load_linear(&vb.pp("mlp").pp("fc2"), c.mlp_width, c.width, true)?,
            heads: c.heads,
        })
    }

    /// `[batch, tokens, w] -> [batch, tokens, w]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, w] = x.dims();
        let head_dim = w / self.heads;
        // qkv channels are laid out [3][heads][head_dim].
        let qkv = self
            .qkv
            .forward(self.norm1.forward(x.clone()))
            .reshape([b, n, 3, self.heads, head_dim]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([b, n, self.heads, head_dim])
                .swap_dims(1, 2)
        };
        let out = sdpa(part(0), part(1), part(2), AttentionModuleOptions::default());
        let x = x + self.proj.forward(merge_heads(out));
        let h = self
            .fc2
            .forward(Activation::Relu6.forward(self.fc1.forward(self.norm2.forward(x.clone()))));
        x + h
    }
}

/// The identity head (`feature.0..3`): flatten → Linear → BatchNorm1d → Linear → BatchNorm1d.
#[derive(Module, Debug)]
pub struct FaceVitHead<B: Backend> {
    linear1: Linear<B>,
    norm1: BatchNorm1dEval<B>,
    linear2: Linear<B>,
    norm2: BatchNorm1dEval<B>,
}

impl<B: Backend> FaceVitHead<B> {
    fn load(vb: &Weights<B>, c: &FaceVitConfig) -> Result<Self, LoadError> {
        Ok(Self {
            linear1: load_linear(&vb.pp(0), c.tokens() * c.width, c.width, false)?,
            norm1: BatchNorm1dEval::load(&vb.pp(1), c.width, c.batch_norm_eps)?,
            linear2: load_linear(&vb.pp(2), c.width, c.embedding_dim, false)?,
            norm2: BatchNorm1dEval::load(&vb.pp(3), c.embedding_dim, c.batch_norm_eps)?,
        })
    }

    /// `[batch, tokens, w] -> [batch, embedding_dim]` (token-major flatten).
    fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 2> {
        let x = self
            .norm1
            .forward(self.linear1.forward(tokens.flatten(1, 2)));
        self.norm2.forward(self.linear2.forward(x))
    }
}

/// Outputs of the face ViT.
#[derive(Debug, Clone)]
pub struct FaceVitOutput<B: Backend> {
    /// `[batch, embedding_dim]`: the identity vector (not normalised).
    pub identity: Tensor<B, 2>,
    /// `[batch, tokens, width]`: patch tokens after the final LayerNorm.
    pub patch_tokens: Tensor<B, 3>,
}

/// The ArcFace face ViT (keys `patch_embed.proj.*`, `pos_embed`, `blocks.{i}.*`, `norm.*`,
/// `feature.{0,1,2,3}.*`; the training-only `mask_token` is not needed).
#[derive(Module, Debug)]
pub struct FaceVit<B: Backend> {
    patch_embed: Conv2d<B>,
    pos_embed: Param<Tensor<B, 3>>,
    blocks: Vec<FaceVitBlock<B>>,
    norm: LayerNorm<B>,
    feature: FaceVitHead<B>,
    #[module(skip)]
    config: FaceVitConfig,
}

impl<B: Backend> FaceVit<B> {
    /// Builds the face ViT from `vb` (a checkpoint scope such as `face_clip_l.face_encoder`, or
    /// random weights).
    pub fn load(vb: &Weights<B>, config: FaceVitConfig) -> Result<Self, LoadError> {
        config.validate()?;
        let c = &config;
        let blocks = (0..c.depth)
            .map(|i| FaceVitBlock::load(&vb.pp("blocks").pp(i), c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patch_embed: load_conv2d(
                &vb.pp("patch_embed").pp("proj"),
                [3, c.width],
                c.patch_size,
                c.patch_size,
                true,
            )?,
            pos_embed: Param::from_tensor(vb.tensor("pos_embed", [1, c.tokens(), c.width])?),
            blocks,
            norm: load_layer_norm(&vb.pp("norm"), c.width, c.eps)?,
            feature: FaceVitHead::load(&vb.pp("feature"), c)?,
            config,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &FaceVitConfig {
        &self.config
    }

    /// The learned position embedding `[1, tokens, width]` (FaceCLIP projects it for the fuser).
    pub fn pos_embed(&self) -> Tensor<B, 3> {
        self.pos_embed.val()
    }

    /// Encodes aligned face crops `[batch, 3, H, W]`, RGB in `[0, 1]`, any size.
    pub fn forward(&self, images: Tensor<B, 4>) -> Result<FaceVitOutput<B>, InputError> {
        check_rgb_batch(&images, "face image batch")?;
        let size = self.config.image_size;
        let x = conv_forward(&self.patch_embed, resize_bilinear(images, size, size));
        let x = x.flatten::<3>(2, 3).swap_dims(1, 2) + self.pos_embed.val();
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        let patch_tokens = self.norm.forward(x);
        let identity = self.feature.forward(patch_tokens.clone());
        Ok(FaceVitOutput {
            identity,
            patch_tokens,
        })
    }
}
