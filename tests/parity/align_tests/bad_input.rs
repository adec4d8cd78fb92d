//! Bad and awkward input: broken files, degenerate images, no face, faces at the border,
//! EXIF-rotated JPEGs, damaged weights, invalid options. Typed errors or documented results.

use super::{astronaut, case, fixture};
use faceclip_align::{
    align_face, decode_photo, load_photo, AlignError, DetectorConfig, Face, FaceAligner,
    FaceDetector, FaceSelection, MobileFace, BUNDLED_MOBILEFACE_BIN, BUNDLED_MOBILEFACE_JSON,
    BUNDLED_RETINAFACE,
};
use faceclip_core::backend::NdArray;
use faceclip_core::{InputError, LoadError};
use image::{imageops, DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba};
use std::io::Cursor;

fn aligner() -> FaceAligner<NdArray> {
    FaceAligner::bundled(&Default::default()).unwrap()
}

fn png(img: DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

#[test]
fn broken_image_files_are_typed_errors() {
    let err = decode_photo(b"definitely not an image").unwrap_err();
    assert!(matches!(err, InputError::Image { .. }), "{err}");
    let full = std::fs::read(format!(
        "{}/assets/astronaut.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let err = decode_photo(&full[..full.len() / 3]).unwrap_err();
    assert!(matches!(err, InputError::Image { .. }), "{err}");
    let err = load_photo(fixture("no_such_photo.jpg")).unwrap_err();
    assert!(err.to_string().contains("no_such_photo.jpg"), "{err}");
}

#[test]
fn zero_sized_and_one_pixel_images() {
    let aligner = aligner();
    let err = aligner
        .align(&RgbImage::new(0, 7), FaceSelection::Largest)
        .unwrap_err();
    assert!(
        matches!(err, AlignError::Input(InputError::Empty { .. })),
        "{err}"
    );
    let err = aligner
        .align(
            &RgbImage::from_pixel(1, 1, Rgb([200, 150, 120])),
            FaceSelection::Largest,
        )
        .unwrap_err();
    match err {
        AlignError::NoFaceFound {
            width: 1,
            height: 1,
            best_score,
            ..
        } => assert!(best_score < 0.9),
        other => panic!("expected NoFaceFound, got {other}"),
    }
}

#[test]
fn sixteen_bit_grey_and_rgba_photos_load_as_rgb() {
    let rgb = astronaut();
    let wide: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
            Rgb(rgb.get_pixel(x, y).0.map(|v| v as u16 * 257))
        });
    assert_eq!(
        decode_photo(&png(DynamicImage::ImageRgb16(wide))).unwrap(),
        rgb
    );
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> =
        ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            Rgba([r, g, b, (x % 256) as u8])
        });
    // Alpha is dropped, not blended (as PIL's convert("RGB")).
    assert_eq!(
        decode_photo(&png(DynamicImage::ImageRgba8(rgba))).unwrap(),
        rgb
    );
    let grey = case("grey");
    assert!(grey.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(aligner().align(&grey, FaceSelection::Largest).is_ok());
}

#[test]
fn an_image_without_a_face_reports_the_best_score() {
    let gradient = RgbImage::from_fn(640, 480, |x, y| Rgb([(x / 3) as u8, (y / 2) as u8, 128]));
    let err = aligner()
        .align(&gradient, FaceSelection::Largest)
        .unwrap_err();
    match &err {
        AlignError::NoFaceFound {
            width: 640,
            height: 480,
            best_score,
            threshold,
        } => {
            assert!(*best_score < *threshold, "{err}");
            assert!(err.to_string().contains("640x480"), "{err}");
        }
        other => panic!("expected NoFaceFound, got {other}"),
    }
}

#[test]
fn a_face_at_the_border_is_found_and_its_crop_is_black_outside() {
    // Cut the photo through the face: the left eye is 14 px from the new left edge.
    let img = imageops::crop_imm(&astronaut(), 190, 0, 322, 512).to_image();
    let face = aligner().align(&img, FaceSelection::Largest).unwrap();
    println!("border face: {:?}", face.face);
    assert!(
        face.face.bbox[0] < 2.0,
        "box starts at {}",
        face.face.bbox[0]
    );
    // The crop's left edge maps outside the photo: black.
    let black = (0..448)
        .filter(|&y| face.image.get_pixel(0, y).0 == [0, 0, 0])
        .count();
    assert!(
        black > 300,
        "only {black} black pixels on the crop's left edge"
    );
}

#[test]
fn exif_rotated_jpeg_is_loaded_upright() {
    let photo = load_photo(fixture("astronaut_exif6.jpg")).unwrap();
    let stored = image::open(fixture("astronaut_exif6.jpg"))
        .unwrap()
        .to_rgb8();
    assert_ne!(photo, stored, "the orientation tag was ignored");
    let detector = FaceDetector::<NdArray>::bundled(&Default::default()).unwrap();
    let upright = detector.detect(&photo).unwrap();
    let original = detector.detect(&astronaut()).unwrap();
    assert_eq!(upright.faces.len(), 1);
    let (a, b) = (upright.faces[0], original.faces[0]);
    for (x, y) in a
        .landmarks
        .iter()
        .flatten()
        .zip(b.landmarks.iter().flatten())
    {
        assert!((x - y).abs() < 4.0, "upright {a:?} vs original {b:?}");
    }
}

#[test]
fn damaged_weight_files_are_typed_errors() {
    let device = Default::default();
    let err =
        FaceDetector::<NdArray>::from_onnx_bytes(&BUNDLED_RETINAFACE[..1000], "cut.onnx", &device)
            .unwrap_err();
    assert!(
        matches!(err, AlignError::Load(LoadError::Corrupt { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("cut.onnx"), "{err}");
    let err =
        FaceDetector::<NdArray>::from_onnx_file(fixture("missing.onnx"), &device).unwrap_err();
    assert!(
        matches!(err, AlignError::Load(LoadError::Io { .. })),
        "{err}"
    );
    // A valid ONNX file of another network: the first layer is reported missing.
    let err =
        FaceDetector::<NdArray>::from_onnx_bytes(&[0x3a, 0x02, 0x0a, 0x00], "other.onnx", &device)
            .unwrap_err();
    assert!(err.to_string().contains("fx.stage1.0.0"), "{err}");

    let dir = std::env::temp_dir().join(format!("faceclip-align-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, bin) = (dir.join("m.json"), dir.join("m.bin"));
    std::fs::write(&json, BUNDLED_MOBILEFACE_JSON).unwrap();
    std::fs::write(
        &bin,
        &BUNDLED_MOBILEFACE_BIN[..BUNDLED_MOBILEFACE_BIN.len() - 4],
    )
    .unwrap();
    let err = MobileFace::<NdArray>::from_tfjs_files(&json, &bin, &device).unwrap_err();
    assert!(
        matches!(err, AlignError::Load(LoadError::Corrupt { .. })),
        "{err}"
    );
    std::fs::write(&json, b"{\"weightsManifest\": 3}").unwrap();
    let err = MobileFace::<NdArray>::from_tfjs_files(&json, &bin, &device).unwrap_err();
    assert!(err.to_string().contains("weightsManifest"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_options_and_selections() {
    let device = Default::default();
    let detector = FaceDetector::<NdArray>::bundled(&device).unwrap();
    let config = DetectorConfig {
        score_threshold: 1.5,
        ..Default::default()
    };
    assert!(matches!(
        detector.with_config(config),
        Err(AlignError::InvalidOption {
            name: "score_threshold",
            ..
        })
    ));
    let detector = FaceDetector::<NdArray>::bundled(&device).unwrap();
    assert!(matches!(
        FaceAligner::new(detector, 0),
        Err(AlignError::InvalidOption { .. })
    ));
    let err = aligner()
        .align(&astronaut(), FaceSelection::Index(5))
        .unwrap_err();
    assert!(
        matches!(err, AlignError::FaceIndex { index: 5, found: 1 }),
        "{err}"
    );
    let face = Face {
        bbox: [0.0, 0.0, 10.0, 10.0],
        score: 0.99,
        landmarks: [[3.0, 3.0]; 5],
    };
    let err = align_face(&astronaut(), &face, 112).unwrap_err();
    assert!(
        matches!(err, AlignError::DegenerateLandmarks { .. }),
        "{err}"
    );
    let model = MobileFace::<NdArray>::bundled(&device).unwrap();
    let wrong = burn::tensor::Tensor::<NdArray, 4>::zeros([1, 3, 64, 64], &device);
    assert!(matches!(
        model.forward(wrong),
        Err(InputError::Shape { .. })
    ));
}
