//! Five-point alignment to the ArcFace template: a least-squares similarity transform (Umeyama)
//! and a bilinear warp with a zero border, as `skimage.transform.warp` / `cv2.warpAffine`.

use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::image::rgb_to_tensor;
use image::{Rgb, RgbImage};

use crate::detect::{Detections, Face, FaceDetector};
use crate::error::AlignError;

/// The ArcFace 5-point template for 112×112 crops (insightface): eyes, nose tip, mouth corners.
pub const ARCFACE_TEMPLATE_112: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The crop size FaceCLIP's face encoder expects.
pub const FACECLIP_CROP: u32 = 448;

/// The ArcFace template scaled to a `size`×`size` crop (`size / 112` times the 112 template).
pub fn arcface_template(size: u32) -> [[f64; 2]; 5] {
    let s = size as f64 / 112.0;
    ARCFACE_TEMPLATE_112.map(|[x, y]| [x * s, y * s])
}

/// A 2-D similarity transform (rotation, uniform scale, translation) as a 2×3 matrix mapping
/// `[x, y, 1]` to `[x', y']`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Row-major `[[a, -b, tx], [b, a, ty]]`.
    pub matrix: [[f64; 3]; 2],
}

impl Similarity {
    /// The least-squares similarity mapping `src` points onto `dst` (Umeyama 1991 without
    /// reflection; in 2-D it has the closed form used here). `None` when the source points all
    /// coincide or the slices differ in length or are empty.
    pub fn estimate(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Self> {
        if src.len() != dst.len() || src.is_empty() {
            return None;
        }
        let n = src.len() as f64;
        let mean = |pts: &[[f64; 2]]| {
            let s = pts
                .iter()
                .fold([0.0, 0.0], |acc, p| [acc[0] + p[0], acc[1] + p[1]]);
            [s[0] / n, s[1] / n]
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (x0, x1) = (s[0] - ms[0], s[1] - ms[1]);
            let (y0, y1) = (d[0] - md[0], d[1] - md[1]);
            dot += x0 * y0 + x1 * y1;
            cross += x0 * y1 - x1 * y0;
            norm += x0 * x0 + x1 * x1;
        }
        // `norm` is NaN or tiny for coincident or non-finite points.
        if norm.is_nan() || norm <= 1e-12 || !dot.is_finite() || !cross.is_finite() {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        let tx = md[0] - (a * ms[0] - b * ms[1]);
        let ty = md[1] - (b * ms[0] + a * ms[1]);
        Some(Self {
            matrix: [[a, -b, tx], [b, a, ty]],
        })
    }

    /// Maps one point.
    pub fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        let m = &self.matrix;
        [
            m[0][0] * x + m[0][1] * y + m[0][2],
            m[1][0] * x + m[1][1] * y + m[1][2],
        ]
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.matrix[0][0].hypot(self.matrix[1][0])
    }

    /// The rotation angle in radians (counter-clockwise in image coordinates with y down
    /// appears clockwise on screen).
    pub fn rotation(&self) -> f64 {
        self.matrix[1][0].atan2(self.matrix[0][0])
    }

    /// The inverse transform; `None` for a zero scale.
    pub fn inverse(&self) -> Option<Self> {
        let [[a, _, tx], [b, _, ty]] = self.matrix;
        let det = a * a + b * b;
        if det.is_nan() || det <= 0.0 || !det.is_finite() {
            return None;
        }
        let (ia, ib) = (a / det, -b / det);
        Some(Self {
            matrix: [
                [ia, -ib, -(ia * tx - ib * ty)],
                [ib, ia, -(ib * tx + ia * ty)],
            ],
        })
    }
}

/// Warps `image` into a `size`×`size` crop: each output pixel `p` samples the input at
/// `transform⁻¹(p)` bilinearly (pixel centres on integer coordinates), neighbours outside the
/// image count as black. `transform` maps image coordinates to crop coordinates.
pub fn warp_similarity(image: &RgbImage, transform: &Similarity, size: u32) -> Option<RgbImage> {
    let inv = transform.inverse()?;
    let (w, h) = (image.width() as i64, image.height() as i64);
    let pixel = |x: i64, y: i64| -> [f64; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let p = image.get_pixel(x as u32, y as u32).0;
        [p[0] as f64, p[1] as f64, p[2] as f64]
    };
    let mut out = RgbImage::new(size, size);
    for (u, v, px) in out.enumerate_pixels_mut() {
        let [x, y] = inv.apply([u as f64, v as f64]);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let taps = [
            (pixel(x0, y0), (1.0 - fx) * (1.0 - fy)),
            (pixel(x0 + 1, y0), fx * (1.0 - fy)),
            (pixel(x0, y0 + 1), (1.0 - fx) * fy),
            (pixel(x0 + 1, y0 + 1), fx * fy),
        ];
        let mut rgb = [0u8; 3];
        for (c, value) in rgb.iter_mut().enumerate() {
            let v: f64 = taps.iter().map(|(p, wgt)| p[c] * wgt).sum();
            *value = v.round().clamp(0.0, 255.0) as u8;
        }
        *px = Rgb(rgb);
    }
    Some(out)
}

/// A face warped onto the ArcFace template.
#[derive(Debug, Clone)]
pub struct AlignedFace {
    /// The `size`×`size` RGB crop.
    pub image: RgbImage,
    /// The detection it came from (original image pixels).
    pub face: Face,
    /// The transform from original image pixels to crop pixels.
    pub transform: Similarity,
}

impl AlignedFace {
    /// The crop as the face encoders take it: `[1, 3, size, size]`, RGB in `[0, 1]`.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Result<Tensor<B, 4>, AlignError> {
        Ok(rgb_to_tensor::<B>(&self.image, device)?.unsqueeze_dim(0))
    }
}

/// Aligns one detected face of `image` to the ArcFace template at `size`×`size`.
pub fn align_face(image: &RgbImage, face: &Face, size: u32) -> Result<AlignedFace, AlignError> {
    check_size(size)?;
    let src = face.landmarks.map(|[x, y]| [x as f64, y as f64]);
    let degenerate = || AlignError::DegenerateLandmarks {
        points: face.landmarks,
    };
    let transform = Similarity::estimate(&src, &arcface_template(size)).ok_or_else(degenerate)?;
    let crop = warp_similarity(image, &transform, size).ok_or_else(degenerate)?;
    Ok(AlignedFace {
        image: crop,
        face: *face,
        transform,
    })
}

fn check_size(size: u32) -> Result<(), AlignError> {
    if !(16..=4096).contains(&size) {
        return Err(AlignError::InvalidOption {
            name: "crop size",
            value: size.to_string(),
            reason: "must be between 16 and 4096 pixels (112 for ArcFace, 448 for FaceCLIP)",
        });
    }
    Ok(())
}

/// Which detected face to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaceSelection {
    /// The face with the largest box (the default).
    #[default]
    Largest,
    /// The `n`-th face in order of decreasing box area.
    Index(usize),
}

/// Photo in, aligned face out: a detector plus the crop size.
#[derive(Debug)]
pub struct FaceAligner<B: Backend> {
    detector: FaceDetector<B>,
    size: u32,
}

impl<B: Backend> FaceAligner<B> {
    /// Aligns to `size`×`size` crops (112 or 448 usually) with `detector`.
    pub fn new(detector: FaceDetector<B>, size: u32) -> Result<Self, AlignError> {
        check_size(size)?;
        Ok(Self { detector, size })
    }

    /// The bundled detector with FaceCLIP's 448×448 crops.
    pub fn bundled(device: &B::Device) -> Result<Self, AlignError> {
        Self::new(FaceDetector::bundled(device)?, FACECLIP_CROP)
    }

    /// The detector.
    pub fn detector(&self) -> &FaceDetector<B> {
        &self.detector
    }

    /// The crop size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Detects the faces of `image` and aligns the selected one.
    ///
    /// Errors: [`AlignError::NoFaceFound`] (with the image size and best score) when nothing
    /// passes the threshold, [`AlignError::FaceIndex`] for an index past the faces found.
    pub fn align(
        &self,
        image: &RgbImage,
        selection: FaceSelection,
    ) -> Result<AlignedFace, AlignError> {
        let detections = self.detector.detect(image)?;
        let face = select(
            &detections,
            selection,
            self.detector.config().score_threshold,
        )?;
        align_face(image, &face, self.size)
    }

    /// Aligns every detected face, largest first (empty when there is none).
    pub fn align_all(&self, image: &RgbImage) -> Result<Vec<AlignedFace>, AlignError> {
        let detections = self.detector.detect(image)?;
        detections
            .faces
            .iter()
            .map(|face| align_face(image, face, self.size))
            .collect()
    }
}

/// Picks a face from `detections` (see [`FaceSelection`]).
pub fn select(
    detections: &Detections,
    selection: FaceSelection,
    threshold: f32,
) -> Result<Face, AlignError> {
    if detections.faces.is_empty() {
        return Err(AlignError::NoFaceFound {
            width: detections.image_size[0],
            height: detections.image_size[1],
            best_score: detections.best_score,
            threshold,
        });
    }
    let index = match selection {
        FaceSelection::Largest => 0,
        FaceSelection::Index(i) => i,
    };
    detections
        .faces
        .get(index)
        .copied()
        .ok_or(AlignError::FaceIndex {
            index,
            found: detections.faces.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_recovers_a_known_similarity() {
        let truth = Similarity {
            matrix: [[0.8, -0.6, 10.0], [0.6, 0.8, -5.0]],
        };
        let src = [[0.0, 0.0], [10.0, 3.0], [4.0, 9.0], [7.0, -2.0]];
        let dst = src.map(|p| truth.apply(p));
        let est = Similarity::estimate(&src, &dst).unwrap();
        for (r, t) in est
            .matrix
            .iter()
            .flatten()
            .zip(truth.matrix.iter().flatten())
        {
            assert!((r - t).abs() < 1e-9, "{est:?}");
        }
        let back = est.inverse().unwrap().apply(dst[1]);
        assert!((back[0] - 10.0).abs() < 1e-9 && (back[1] - 3.0).abs() < 1e-9);
        assert!((est.scale() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn coincident_points_have_no_transform() {
        assert!(Similarity::estimate(&[[1.0, 1.0]; 5], &ARCFACE_TEMPLATE_112).is_none());
    }

    #[test]
    fn identity_warp_copies_and_borders_are_black() {
        let mut img = RgbImage::new(4, 4);
        img.put_pixel(1, 2, Rgb([10, 20, 30]));
        let id = Similarity {
            matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        };
        assert_eq!(warp_similarity(&img, &id, 4).unwrap(), img);
        let shifted = Similarity {
            matrix: [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]],
        };
        let out = warp_similarity(&img, &shifted, 4).unwrap();
        // Output (2, 2) samples x = 1.5: half the coloured pixel, half its black neighbour.
        assert_eq!(out.get_pixel(2, 2).0, [5, 10, 15]);
    }
}
