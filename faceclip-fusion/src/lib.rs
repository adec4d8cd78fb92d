//! Identity–text fusion for faceclip-rs.
//!
//! - [`fuser`]: FaceCLIP's own GroundingDINO-style fuser (bi-attention, text enhancer,
//!   deformable attention over the face grid), loadable from the released checkpoint.
//! - [`fusion`]: the [`Fusion`] trait, the alternatives (additive, cross-attention, gated) and
//!   [`AnyFusion`], which a branch selects with [`FusionKind`].
//! - [`encoder`]: the complete FaceCLIP-SDXL identity–text encoder (L and bigG branches).
//! - [`facet5`]: FaceT5-FLUX's text side: FaceT5 (T5 + face ViT + fuser with batch-axis image
//!   layers) and FLUX's CLIP-L pooled vector.
//!
//! # Beyond the reference
//!
//! [`FaceClipEncoder::encode`] reproduces the released behaviour. [`FaceClipEncoder::encode_person`]
//! adds two controls the reference lacks, both documented there:
//! - identity strength `s ∈ [0, 2]`: `e = e_text + s·(e_face − e_text)`, `e_text` being the same
//!   prompt with the face absent; `s = 1` is exactly the reference;
//! - several photos of one person: identity vectors averaged after L2 normalisation (then
//!   re-normalised) and patch tokens averaged; one photo is exactly the reference.
//!
//! [`FaceClipEncoder::encode_negative`] caches the negative branch, which depends only on the
//! negative prompt (its face is all zeros).
//!
//! # Numerics
//!
//! Everything runs in the backend's float type (f32 by default). The reference computes the
//! fuser in f32 but produces its inputs (`text_embed_proj`, `face_patch_proj`, `face_pos_proj`,
//! `text_pos_proj`, `proj1`) under bf16 autocast; this port keeps them in f32 (spec §10 item 21).

#![warn(missing_docs)]

pub mod encoder;
pub mod facet5;
pub mod fuser;
pub mod fusion;
mod prompt_cache;

pub use encoder::{
    BranchConfig, EncodeError, FaceClipBranch, FaceClipConfig, FaceClipEncoder, FaceClipOutput,
};
pub use facet5::{
    FaceT5Config, FaceT5Encoder, FaceT5FluxConfig, FaceT5FluxEncoder, FluxTextOutput,
    FLUX_NEGATIVE_PROMPT,
};
pub use fuser::{FaceClipFuser, FuserConfig, ImageLayerKind};
pub use fusion::{AnyFusion, Fusion, FusionInput, FusionKind};
