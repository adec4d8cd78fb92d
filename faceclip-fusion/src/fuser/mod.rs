//! FaceCLIP's fuser (`TextFaceEmbeddingFuser`): the encoder of GroundingDINO without its
//! decoder. Each of its layers runs, in this order,
//! [`BiAttentionBlock`] (face ⟷ text) → [`TextEnhancerLayer`] (text) → image layer (face);
//! the text stream after the last layer is the output. The image layer is a
//! [`DeformableLayer`] in FaceCLIP-SDXL and a [`BatchAxisEncoderLayer`] in FaceT5 (see
//! [`ImageLayerKind`]). Keys live under `fuser.encoder.`.

mod batch_axis;
mod bi_attention;
mod deformable;
mod text_enhancer;

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

pub use batch_axis::BatchAxisEncoderLayer;
pub use bi_attention::BiAttentionBlock;
pub use deformable::{DeformableConfig, DeformableLayer};
pub use text_enhancer::TextEnhancerLayer;

/// Sizes of the fuser; [`FuserConfig::faceclip`] gives the released ones for a width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuserConfig {
    /// Model width `d` (the text tower width: 768 or 1280).
    pub d_model: usize,
    /// Number of layers (6).
    pub layers: usize,
    /// Which image-side layer each fuser layer ends with.
    pub image_layer: ImageLayerKind,
    /// Image-layer attention heads (8).
    pub image_heads: usize,
    /// Deformable sampling points (4; unused by the batch-axis layer).
    pub points: usize,
    /// Image layer FFN width (2048).
    pub ffn: usize,
    /// Text enhancer heads (4).
    pub text_heads: usize,
    /// Text enhancer FFN width (1024).
    pub text_ffn: usize,
    /// Bi-attention inner width (1024).
    pub fusion_embed: usize,
    /// Bi-attention heads (4).
    pub fusion_heads: usize,
    /// Face grid `[height, width]` (`[12, 12]`).
    pub grid: [usize; 2],
}

/// The image-side layer of a fuser layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLayerKind {
    /// Single-level deformable self-attention over the face grid, with face positions
    /// (FaceCLIP-SDXL).
    Deformable,
    /// A DETR encoder layer whose attention runs across the batch axis and which never sees the
    /// face positions (FaceT5, spec §7.2).
    BatchAxis,
}

impl FuserConfig {
    /// The released fuser of one FaceCLIP branch of width `d_model`.
    pub fn faceclip(d_model: usize) -> Self {
        Self::with_ffn(d_model, 2048)
    }

    /// The released FaceT5 fuser (width 4096, batch-axis image layers).
    pub fn facet5() -> Self {
        Self {
            image_layer: ImageLayerKind::BatchAxis,
            ..Self::with_ffn(4096, 2048)
        }
    }

    /// The GroundingDINO layout with the FFN width `ffn` (text FFN and bi-attention width are
    /// `ffn / 2`, as GroundingDINO derives them), 6 layers, 8/4/4 heads, 4 points, 12×12 grid.
    pub fn with_ffn(d_model: usize, ffn: usize) -> Self {
        Self {
            d_model,
            layers: 6,
            image_layer: ImageLayerKind::Deformable,
            image_heads: 8,
            points: 4,
            ffn,
            text_heads: 4,
            text_ffn: ffn / 2,
            fusion_embed: ffn / 2,
            fusion_heads: 4,
            grid: [12, 12],
        }
    }

    fn deformable(&self) -> DeformableConfig {
        DeformableConfig {
            d_model: self.d_model,
            heads: self.image_heads,
            points: self.points,
            ffn: self.ffn,
            grid: self.grid,
        }
    }
}

/// LayerNorm epsilon of every fuser norm.
const EPS: f64 = 1e-5;

/// The image-side layer of one fuser layer.
// At most six per model, built once: the size difference between the variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageLayer<B: Backend> {
    /// FaceCLIP-SDXL's deformable layer.
    Deformable(DeformableLayer<B>),
    /// FaceT5's batch-axis DETR layer.
    BatchAxis(BatchAxisEncoderLayer<B>),
}

impl<B: Backend> ImageLayer<B> {
    fn load(vb: &Weights<B>, c: &FuserConfig) -> Result<Self, LoadError> {
        Ok(match c.image_layer {
            ImageLayerKind::Deformable => {
                Self::Deformable(DeformableLayer::load(vb, c.deformable(), EPS)?)
            }
            ImageLayerKind::BatchAxis => Self::BatchAxis(BatchAxisEncoderLayer::load(
                vb,
                c.d_model,
                c.image_heads,
                c.ffn,
                EPS,
            )?),
        })
    }

    fn forward(&self, v: Tensor<B, 3>, pos_v: Tensor<B, 3>) -> Result<Tensor<B, 3>, InputError> {
        match self {
            Self::Deformable(layer) => layer.forward(v, pos_v),
            Self::BatchAxis(layer) => Ok(layer.forward(v)),
        }
    }
}

/// FaceCLIP's 6-layer image–text fusion encoder.
#[derive(Module, Debug)]
pub struct FaceClipFuser<B: Backend> {
    fusion_layers: Vec<BiAttentionBlock<B>>,
    text_layers: Vec<TextEnhancerLayer<B>>,
    layers: Vec<ImageLayer<B>>,
}

impl<B: Backend> FaceClipFuser<B> {
    /// Loads `encoder.{fusion_layers,text_layers,layers}.{i}` from the fuser scope (`P.fuser`);
    /// the two-stage leftovers `enc_output*` are unused.
    pub fn load(vb: &Weights<B>, c: &FuserConfig) -> Result<Self, LoadError> {
        let enc = vb.pp("encoder");
        let mut fuser = Self {
            fusion_layers: Vec::new(),
            text_layers: Vec::new(),
            layers: Vec::new(),
        };
        for i in 0..c.layers {
            fuser.fusion_layers.push(BiAttentionBlock::load(
                &enc.pp("fusion_layers").pp(i),
                c.d_model,
                c.fusion_embed,
                c.fusion_heads,
                EPS,
            )?);
            fuser.text_layers.push(TextEnhancerLayer::load(
                &enc.pp("text_layers").pp(i),
                c.d_model,
                c.text_heads,
                c.text_ffn,
                EPS,
            )?);
            fuser
                .layers
                .push(ImageLayer::load(&enc.pp("layers").pp(i), c)?);
        }
        Ok(fuser)
    }

    /// Fuses text `[B, T, d]` (positions `pos_l [B or 1, T, d]`) with face patches `[B, 144, d]`
    /// (positions `pos_v [B or 1, 144, d]`, unused by batch-axis image layers); returns the text
    /// stream `[B, T, d]`. The last image layer is skipped: its output never reaches the text.
    pub fn forward(
        &self,
        text: Tensor<B, 3>,
        pos_l: Tensor<B, 3>,
        face: Tensor<B, 3>,
        pos_v: Tensor<B, 3>,
    ) -> Result<Tensor<B, 3>, InputError> {
        Ok(self.run(text, pos_l, face, pos_v, false)?.0)
    }

    /// Like [`forward`](Self::forward) but also runs the last image layer and returns
    /// `(text [B, T, d], face [B, 144, d])`.
    pub fn forward_both(
        &self,
        text: Tensor<B, 3>,
        pos_l: Tensor<B, 3>,
        face: Tensor<B, 3>,
        pos_v: Tensor<B, 3>,
    ) -> Result<(Tensor<B, 3>, Tensor<B, 3>), InputError> {
        self.run(text, pos_l, face, pos_v, true)
    }

    fn run(
        &self,
        text: Tensor<B, 3>,
        pos_l: Tensor<B, 3>,
        face: Tensor<B, 3>,
        pos_v: Tensor<B, 3>,
        last_face_layer: bool,
    ) -> Result<(Tensor<B, 3>, Tensor<B, 3>), InputError> {
        let (mut v, mut l) = (face, text);
        let count = self.layers.len();
        for (i, ((fusion, text_layer), layer)) in self
            .fusion_layers
            .iter()
            .zip(&self.text_layers)
            .zip(&self.layers)
            .enumerate()
        {
            (v, l) = fusion.forward(v, l);
            l = text_layer.forward(l, pos_l.clone());
            if last_face_layer || i + 1 < count {
                v = layer.forward(v, pos_v.clone())?;
            }
        }
        Ok((l, v))
    }
}
