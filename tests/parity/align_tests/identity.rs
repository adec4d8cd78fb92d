//! MobileFace against an interpreter of its TFJS graph (torch ops), and identity similarity on
//! real faces: same person high, another person low.

use super::{case, fixture, reference, CASES};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use faceclip_align::{identity_similarity, FaceAligner, FaceDetector, FaceSelection, MobileFace};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::{assert_close, relative_l2};

const TOLERANCE: f64 = 1e-4;

fn check_noise<B: Backend>(device: &B::Device) {
    let model = MobileFace::<B>::bundled(device).unwrap();
    let r = reference();
    let (noise, shape) = r.read_f32("mobileface.noise.input").unwrap();
    // The reference input is NHWC in 0..255; ours is NCHW in 0..1.
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(noise, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
    .permute([0, 3, 1, 2])
        / 255.0;
    assert_close(
        "MobileFace noise",
        model.forward(x).unwrap(),
        &r,
        "mobileface.noise.embedding",
        TOLERANCE,
    );
}

#[test]
fn mobileface_matches_tfjs_graph_ndarray() {
    check_noise::<NdArray>(&Default::default());
    let model = MobileFace::<NdArray>::bundled(&Default::default()).unwrap();
    let r = reference();
    for name in CASES {
        let crop = image::open(fixture(&format!("{name}_aligned112.png")))
            .unwrap()
            .to_rgb8();
        let ours = model.embed(&crop).unwrap();
        let (expected, _) = r.read_f32(&format!("mobileface.{name}.embedding")).unwrap();
        let err = relative_l2(&ours, &expected);
        assert!(err < TOLERANCE, "MobileFace {name}: relative L2 {err:.2e}");
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn mobileface_matches_tfjs_graph_wgpu() {
    check_noise::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn mobileface_matches_tfjs_graph_cuda() {
    check_noise::<faceclip_core::backend::Cuda>(&Default::default());
}

#[test]
fn same_person_scores_above_another_person() {
    let device = Default::default();
    let aligner =
        FaceAligner::new(FaceDetector::<NdArray>::bundled(&device).unwrap(), 112).unwrap();
    let model = MobileFace::<NdArray>::bundled(&device).unwrap();
    let embed = |name: &str| {
        let face = aligner.align(&case(name), FaceSelection::Largest).unwrap();
        model.embed(&face.image).unwrap()
    };
    let astronaut = embed("astronaut");
    let flipped = identity_similarity(&astronaut, &embed("flip")).unwrap();
    let rotated = identity_similarity(&astronaut, &embed("rot20")).unwrap();
    let other = identity_similarity(&astronaut, &embed("camera")).unwrap();
    println!("identity similarity: flipped {flipped:.4}, rotated 20° {rotated:.4}, another person {other:.4}");
    assert!(flipped > 0.6, "flipped astronaut {flipped}");
    assert!(rotated > 0.6, "rotated astronaut {rotated}");
    assert!(
        other < flipped.min(rotated) && other < 0.4,
        "another person {other}"
    );
    // A 448 FaceCLIP crop is resized for the scorer and still matches.
    let big = FaceAligner::<NdArray>::bundled(&device)
        .unwrap()
        .align(&case("astronaut"), FaceSelection::Largest)
        .unwrap();
    let resized = identity_similarity(&astronaut, &model.embed(&big.image).unwrap()).unwrap();
    assert!(resized > 0.8, "448 crop resized {resized}");
}

#[test]
fn similarity_rejects_mismatched_embeddings() {
    assert!(identity_similarity(&[1.0, 0.0], &[1.0]).is_err());
    assert!(identity_similarity(&[], &[]).is_err());
    assert_eq!(identity_similarity(&[0.0, 0.0], &[1.0, 2.0]).unwrap(), 0.0);
    assert!((identity_similarity(&[1.0, 2.0], &[2.0, 4.0]).unwrap() - 1.0).abs() < 1e-6);
}
