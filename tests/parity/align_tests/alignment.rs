//! Alignment against skimage: `SimilarityTransform.estimate` (Umeyama) to the ArcFace template
//! and `warp(order=1, cval=0)`, computed by the fixture script on the reference landmarks.

use super::{case, closest, fixture, reference, reference_faces};
use faceclip_align::{
    align_face, arcface_template, FaceAligner, FaceDetector, FaceSelection, Similarity,
};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::relative_l2;
use image::RgbImage;

/// Mean absolute error allowed between crops, in 0–255 units (the 1/255).
const CROP_MAE: f64 = 1.0;

fn mae(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum();
    sum / a.as_raw().len() as f64
}

#[test]
fn crops_match_skimage_warp() {
    let detector = FaceDetector::<NdArray>::bundled(&Default::default()).unwrap();
    let r = reference();
    let mut report = Vec::new();
    for (name, size) in [
        ("astronaut", 448),
        ("astronaut", 112),
        ("rot20", 112),
        ("half", 112),
        ("flip", 112),
        ("grey", 112),
        ("canvas", 112),
        ("camera", 112),
    ] {
        let image = case(name);
        let expected_faces = reference_faces(name);
        // The fixture aligned the reference's largest face; align the same face of ours.
        let want = expected_faces
            .iter()
            .max_by(|a, b| a.area().total_cmp(&b.area()))
            .unwrap();
        let ours = detector.detect(&image).unwrap();
        let face = closest(&ours.faces, want);
        let aligned = align_face(&image, face, size).unwrap();

        let (matrix, _) = r.read_f32(&format!("{name}.align{size}.matrix")).unwrap();
        let got: Vec<f32> = aligned
            .transform
            .matrix
            .iter()
            .flatten()
            .map(|v| *v as f32)
            .collect();
        let err = relative_l2(&got, &matrix[..6]);
        assert!(
            err < 1e-3,
            "{name} {size}: transform {got:?} vs skimage {matrix:?} (rel {err:.2e})"
        );

        let expected = image::open(fixture(&format!("{name}_aligned{size}.png")))
            .unwrap()
            .to_rgb8();
        let e = mae(&aligned.image, &expected);
        assert!(e <= CROP_MAE, "{name} {size}: crop MAE {e:.3} / 255");

        // Our warp on the reference's own landmarks isolates the warp from detection noise.
        let exact = align_face(&image, want, size).unwrap();
        let e_exact = mae(&exact.image, &expected);
        assert!(
            e_exact <= 0.05,
            "{name} {size}: warp of reference landmarks, MAE {e_exact:.4} / 255"
        );
        report.push(format!("{name}@{size}: {e:.3}"));
    }
    println!("crop MAE vs skimage (0-255 units): {}", report.join(", "));
}

#[test]
fn aligner_gives_the_face_vit_input() {
    let device = Default::default();
    let aligner = FaceAligner::<NdArray>::bundled(&device).unwrap();
    let face = aligner
        .align(&case("astronaut"), FaceSelection::Largest)
        .unwrap();
    assert_eq!(face.image.dimensions(), (448, 448));
    let t = face.to_tensor::<NdArray>(&device).unwrap();
    assert_eq!(t.dims(), [1, 3, 448, 448]);
    // The five landmarks land near the template (the least-squares residual of a real face is
    // a few pixels at 112; the exact optimum is checked against skimage above).
    let residuals: Vec<f64> = face
        .face
        .landmarks
        .iter()
        .zip(arcface_template(448))
        .map(|(point, target)| {
            let p = face.transform.apply([point[0] as f64, point[1] as f64]);
            (p[0] - target[0]).hypot(p[1] - target[1])
        })
        .collect();
    let mean = residuals.iter().sum::<f64>() / 5.0;
    assert!(mean < 32.0, "residuals {residuals:?} at 448");
    let all = aligner.align_all(&case("canvas")).unwrap();
    assert_eq!(all.len(), 3);
    // Index 2 is the smallest copy (the half-size astronaut).
    let small = aligner
        .align(&case("canvas"), FaceSelection::Index(2))
        .unwrap();
    assert!(small.face.area() < all[0].face.area() / 2.0);
    assert!(
        (Similarity::estimate(&[[0.0, 0.0], [1.0, 0.0]], &[[0.0, 0.0], [0.0, 2.0]])
            .unwrap()
            .scale()
            - 2.0)
            .abs()
            < 1e-12
    );
}
