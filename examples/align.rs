//! Detects and aligns the faces of a photo: writes every aligned crop, an overlay with boxes and
//! landmarks, and prints the chosen face's MobileFace identity embedding.
//!
//! ```text
//! cargo run --release --example align -- [--image PATH] [--out DIR] [--size 448|112]
//!     [--face INDEX] [--backend ndarray|wgpu|cuda|cuda-bf16]
//! ```
//!
//! Defaults: the shipped astronaut photo, `align-out/`, 448×448 crops (FaceCLIP's input), the
//! largest face. Real weights (RetinaFace and MobileFace) ship with `faceclip-align`.

mod common;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use common::{run_on_backend, Flags, Job, DEMO_PHOTO};
use faceclip::align::{
    draw_faces, load_photo, select, FaceAligner, FaceDetector, FaceSelection, MobileFace,
};

struct Args {
    image: String,
    out: PathBuf,
    size: u32,
    face: usize,
}

impl Job for Args {
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Box<dyn Error>> {
        let start = Instant::now();
        let aligner = FaceAligner::new(FaceDetector::<B>::bundled(device)?, self.size)?;
        let scorer = MobileFace::<B>::bundled(device)?;
        println!(
            "backend {}: models loaded in {:?}",
            B::name(device),
            start.elapsed()
        );

        let photo = load_photo(&self.image)?;
        let start = Instant::now();
        let detections = aligner.detector().detect(&photo)?;
        println!(
            "{}: {}x{} (detector ran at {}x{}), {} face(s) in {:?}, best score {:.4}",
            self.image,
            photo.width(),
            photo.height(),
            detections.input_size[0],
            detections.input_size[1],
            detections.faces.len(),
            start.elapsed(),
            detections.best_score
        );
        std::fs::create_dir_all(&self.out)?;
        for (i, face) in detections.faces.iter().enumerate() {
            let [x1, y1, x2, y2] = face.bbox;
            println!(
                "  face {i}: box ({x1:.1}, {y1:.1})–({x2:.1}, {y2:.1}), score {:.4}, eyes ({:.1}, {:.1}) ({:.1}, {:.1})",
                face.score,
                face.landmarks[0][0],
                face.landmarks[0][1],
                face.landmarks[1][0],
                face.landmarks[1][1]
            );
            let aligned = faceclip::align::align_face(&photo, face, self.size)?;
            let path = self.out.join(format!("face_{i}.png"));
            aligned.image.save(&path)?;
            println!(
                "    aligned {}x{} → {}",
                self.size,
                self.size,
                path.display()
            );
        }
        let overlay = self.out.join("overlay.png");
        draw_faces(&photo, &detections.faces).save(&overlay)?;
        println!("overlay → {}", overlay.display());

        let threshold = aligner.detector().config().score_threshold;
        let chosen = select(&detections, FaceSelection::Index(self.face), threshold)?;
        let aligned = faceclip::align::align_face(&photo, &chosen, self.size)?;
        let start = Instant::now();
        let embedding = scorer.embed(&aligned.image)?;
        let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        let head: Vec<String> = embedding
            .iter()
            .take(6)
            .map(|v| format!("{v:+.3}"))
            .collect();
        println!(
            "face {}: MobileFace identity embedding [{}] norm {norm:.2}, [{}, …] in {:?}",
            self.face,
            embedding.len(),
            head.join(", "),
            start.elapsed()
        );
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let flags = Flags::parse(
        &["image", "out", "size", "face"],
        "align [--image PATH] [--out DIR] [--size 448|112] [--face INDEX] [--backend ndarray|wgpu|cuda|cuda-bf16]",
    )?;
    let number = |name: &str, default: &str| -> Result<u64, String> {
        let value = flags.get_or(name, default);
        value
            .parse()
            .map_err(|_| format!("--{name} must be a whole number, got `{value}`"))
    };
    let args = Args {
        image: flags.get_or("image", DEMO_PHOTO),
        out: flags.get_or("out", "align-out").into(),
        size: number("size", "448")? as u32,
        face: number("face", "0")? as usize,
    };
    run_on_backend(&flags, &args)
}
