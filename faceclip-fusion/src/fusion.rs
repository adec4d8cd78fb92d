//! The [`Fusion`] trait and the alternatives to FaceCLIP's fuser that researchers can swap in.
//!
//! Every fusion module maps text states `[B, T, d]` (with positions), face patch tokens
//! `[B, N, d]` (with positions) and the L2-normalised identity vector `[B, d_id]` to fused
//! text states `[B, T, d]`. The alternatives have no released weights: they are built from a
//! checkpoint scope like everything else, or initialised deterministically from a seed with
//! [`Weights::seeded`](faceclip_core::weights::Weights::seeded) for training.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::LayerNorm;
use faceclip_core::nn::{load_layer_norm, load_linear, Linear, PackedMultiheadAttention};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

use crate::{FaceClipFuser, FuserConfig};

/// What a fusion module sees.
#[derive(Debug, Clone)]
pub struct FusionInput<B: Backend> {
    /// `[B, T, d]`: projected text states.
    pub text: Tensor<B, 3>,
    /// `[B or 1, T, d]`: projected text positions.
    pub text_pos: Tensor<B, 3>,
    /// `[B, N, d]`: projected face patch tokens.
    pub face: Tensor<B, 3>,
    /// `[B or 1, N, d]`: projected face positions.
    pub face_pos: Tensor<B, 3>,
    /// `[B, d_id]`: the identity vector, L2-normalised.
    pub identity: Tensor<B, 2>,
}

/// A module that injects face information into text states.
pub trait Fusion<B: Backend> {
    /// `FusionInput -> [B, T, d]`.
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError>;
}

impl<B: Backend> Fusion<B> for FaceClipFuser<B> {
    /// FaceCLIP's fuser (see [`FaceClipFuser`]); the identity vector is not used (as in the reference).
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError> {
        self.forward(input.text, input.text_pos, input.face, input.face_pos)
    }
}

/// `out = text + scale · proj(identity)` broadcast over the tokens (keys `proj.*`).
#[derive(Module, Debug)]
pub struct AdditiveFusion<B: Backend> {
    proj: Linear<B>,
    scale: f64,
}

impl<B: Backend> AdditiveFusion<B> {
    /// Loads `proj` (`d_id -> d`).
    pub fn load(
        vb: &Weights<B>,
        identity_dim: usize,
        d_model: usize,
        scale: f64,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            proj: load_linear(&vb.pp("proj"), identity_dim, d_model, true)?,
            scale,
        })
    }
}

impl<B: Backend> Fusion<B> for AdditiveFusion<B> {
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError> {
        let shift = self.proj.forward(input.identity).unsqueeze_dim::<3>(1) * self.scale;
        Ok(input.text + shift)
    }
}

/// `out = text + attn(norm(text) + pos_l, face + pos_v, face)`: text attends to the face
/// patches, residual (keys `norm.*`, `attn.{in_proj_weight,in_proj_bias,out_proj}`).
#[derive(Module, Debug)]
pub struct CrossAttentionFusion<B: Backend> {
    norm: LayerNorm<B>,
    attn: PackedMultiheadAttention<B>,
}

impl<B: Backend> CrossAttentionFusion<B> {
    /// Loads `norm` and `attn` for width `d_model` and `heads` heads.
    pub fn load(vb: &Weights<B>, d_model: usize, heads: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm: load_layer_norm(&vb.pp("norm"), d_model, 1e-5)?,
            attn: PackedMultiheadAttention::load(&vb.pp("attn"), d_model, heads)?,
        })
    }

    fn attend(&self, input: &FusionInput<B>) -> Tensor<B, 3> {
        let query = self.norm.forward(input.text.clone()) + input.text_pos.clone();
        let key = input.face.clone() + input.face_pos.clone();
        self.attn.forward(query, key, input.face.clone())
    }
}

impl<B: Backend> Fusion<B> for CrossAttentionFusion<B> {
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError> {
        let attended = self.attend(&input);
        Ok(input.text + attended)
    }
}

/// `a = attn(norm(text) + pos_l, face + pos_v, face)`, `g = σ(gate([text, a]))`,
/// `out = (1 − g) ⊙ text + g ⊙ a` (keys `cross.*` as [`CrossAttentionFusion`], `gate.*`).
#[derive(Module, Debug)]
pub struct GatedFusion<B: Backend> {
    cross: CrossAttentionFusion<B>,
    gate: Linear<B>,
}

impl<B: Backend> GatedFusion<B> {
    /// Loads `cross` and `gate` (`2d -> d`).
    pub fn load(vb: &Weights<B>, d_model: usize, heads: usize) -> Result<Self, LoadError> {
        Ok(Self {
            cross: CrossAttentionFusion::load(&vb.pp("cross"), d_model, heads)?,
            gate: load_linear(&vb.pp("gate"), 2 * d_model, d_model, true)?,
        })
    }
}

impl<B: Backend> Fusion<B> for GatedFusion<B> {
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError> {
        let attended = self.cross.attend(&input);
        let gate = sigmoid(
            self.gate
                .forward(Tensor::cat(vec![input.text.clone(), attended.clone()], 2)),
        );
        Ok(input.text * (gate.clone().neg() + 1.0) + attended * gate)
    }
}

/// Which fusion module a branch uses.
#[derive(Debug, Clone, PartialEq)]
pub enum FusionKind {
    /// FaceCLIP's fuser (the released weights).
    FaceClip(FuserConfig),
    /// [`AdditiveFusion`] with its scale.
    Additive {
        /// Multiplier of the projected identity.
        scale: f64,
    },
    /// [`CrossAttentionFusion`] with its head count.
    CrossAttention {
        /// Attention heads.
        heads: usize,
    },
    /// [`GatedFusion`] with its head count.
    Gated {
        /// Attention heads.
        heads: usize,
    },
}

/// Any of the fusion modules, chosen by [`FusionKind`]; keys under the branch's `fuser.` scope.
// One value per branch, never stored in bulk: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyFusion<B: Backend> {
    /// FaceCLIP's fuser.
    FaceClip(FaceClipFuser<B>),
    /// Additive identity injection.
    Additive(AdditiveFusion<B>),
    /// Text-to-face cross-attention.
    CrossAttention(CrossAttentionFusion<B>),
    /// Gated cross-attention.
    Gated(GatedFusion<B>),
}

impl<B: Backend> AnyFusion<B> {
    /// Builds the module `kind` for width `d_model` and identity width `identity_dim`.
    pub fn load(
        vb: &Weights<B>,
        kind: &FusionKind,
        d_model: usize,
        identity_dim: usize,
    ) -> Result<Self, LoadError> {
        Ok(match kind {
            FusionKind::FaceClip(c) => {
                if c.d_model != d_model {
                    return Err(LoadError::Config(format!(
                        "{}: fuser width {} does not match the text tower width {d_model}",
                        vb.prefix(),
                        c.d_model
                    )));
                }
                Self::FaceClip(FaceClipFuser::load(vb, c)?)
            }
            FusionKind::Additive { scale } => {
                Self::Additive(AdditiveFusion::load(vb, identity_dim, d_model, *scale)?)
            }
            FusionKind::CrossAttention { heads } => {
                Self::CrossAttention(CrossAttentionFusion::load(vb, d_model, *heads)?)
            }
            FusionKind::Gated { heads } => Self::Gated(GatedFusion::load(vb, d_model, *heads)?),
        })
    }
}

impl<B: Backend> Fusion<B> for AnyFusion<B> {
    fn fuse(&self, input: FusionInput<B>) -> Result<Tensor<B, 3>, InputError> {
        match self {
            Self::FaceClip(m) => m.fuse(input),
            Self::Additive(m) => m.fuse(input),
            Self::CrossAttention(m) => m.fuse(input),
            Self::Gated(m) => m.fuse(input),
        }
    }
}
