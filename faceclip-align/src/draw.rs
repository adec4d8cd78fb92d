//! Overlay drawing for inspecting detections: boxes and the five landmarks.

use image::{Rgb, RgbImage};

use crate::detect::Face;

/// Landmark colours: left eye red, right eye yellow, nose magenta, mouth corners green and blue.
const LANDMARK_COLOURS: [[u8; 3]; 5] = [
    [255, 0, 0],
    [255, 255, 0],
    [255, 0, 255],
    [0, 255, 0],
    [0, 0, 255],
];
const BOX_COLOUR: [u8; 3] = [0, 255, 0];

/// A copy of `image` with each face's box (its outline clipped to the image) and landmarks
/// drawn; line width and dot size grow with the face.
pub fn draw_faces(image: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut out = image.clone();
    for face in faces {
        let side = (face.bbox[2] - face.bbox[0])
            .max(face.bbox[3] - face.bbox[1])
            .max(1.0);
        let thick = ((side / 100.0).ceil() as i64).max(1);
        let [x1, y1, x2, y2] = face.bbox.map(|v| v.round() as i64);
        fill(&mut out, [x1, y1, x2, y1 + thick], BOX_COLOUR);
        fill(&mut out, [x1, y2 - thick, x2, y2], BOX_COLOUR);
        fill(&mut out, [x1, y1, x1 + thick, y2], BOX_COLOUR);
        fill(&mut out, [x2 - thick, y1, x2, y2], BOX_COLOUR);
        for (p, colour) in face.landmarks.iter().zip(LANDMARK_COLOURS) {
            let [x, y] = p.map(|v| v.round() as i64);
            let r = thick + 1;
            fill(&mut out, [x - r, y - r, x + r + 1, y + r + 1], colour);
        }
    }
    out
}

/// Fills the half-open rectangle `[x1, y1, x2, y2)`, clipped to the image.
fn fill(img: &mut RgbImage, [x1, y1, x2, y2]: [i64; 4], colour: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y1.max(0)..y2.min(h) {
        for x in x1.max(0)..x2.min(w) {
            img.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}
