//! Typed errors of face detection, alignment and identity scoring.

use faceclip_core::{InputError, LoadError};

/// Everything that can go wrong between a photo and an aligned face.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    /// A model file (RetinaFace ONNX, MobileFace TFJS) could not be read or does not fit the model.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The image or tensor passed in is unusable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The detector found no face scoring above the threshold.
    #[error(
        "no face found in the {width}x{height} image (best face score {best_score:.4}, threshold {threshold})"
    )]
    NoFaceFound {
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// The highest face probability of any anchor (0 when the image was too small to score).
        best_score: f32,
        /// The score threshold that was applied.
        threshold: f32,
    },
    /// A face was requested by an index beyond the faces found.
    #[error("face index {index} requested but only {found} face(s) were found")]
    FaceIndex {
        /// The requested index (faces are sorted by area, largest first).
        index: usize,
        /// How many faces were found.
        found: usize,
    },
    /// The five landmarks do not determine a similarity transform (for example all coincide).
    #[error("degenerate landmarks {points:?}: no similarity transform to the template")]
    DegenerateLandmarks {
        /// The landmarks given, in pixels.
        points: [[f32; 2]; 5],
    },
    /// An option has a value that cannot work (for example a crop size of 0).
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
}
