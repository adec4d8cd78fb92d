//! CPU (ndarray) time of face detection and alignment on a 1024×768 photo (the astronaut and a
//! mirrored copy on a grey background, real RetinaFace weights), and of the MobileFace identity
//! embedding of one aligned crop.
//!
//! `cargo bench --bench align` (results recorded in `benches/RESULTS.md`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use faceclip::align::{load_photo, FaceAligner, FaceSelection, MobileFace};
use faceclip::backend::NdArray;
use image::{imageops, Rgb, RgbImage};

type B = NdArray;

fn photo_1024x768() -> RgbImage {
    let astronaut = load_photo(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut.png"))
        .expect("astronaut.png");
    let mut photo = RgbImage::from_pixel(1024, 768, Rgb([90, 90, 90]));
    imageops::replace(&mut photo, &astronaut, 0, 128);
    imageops::replace(&mut photo, &imageops::flip_horizontal(&astronaut), 512, 0);
    photo
}

fn align(c: &mut Criterion) {
    let device = Default::default();
    let aligner = FaceAligner::<B>::bundled(&device).expect("detector");
    let scorer = MobileFace::<B>::bundled(&device).expect("MobileFace");
    let photo = photo_1024x768();
    assert_eq!(
        aligner
            .detector()
            .detect(&photo)
            .expect("detect")
            .faces
            .len(),
        2
    );
    c.bench_function("retinaface_detect_1024x768_ndarray", |b| {
        b.iter(|| aligner.detector().detect(&photo).expect("detect"))
    });
    c.bench_function("detect_and_align_448_1024x768_ndarray", |b| {
        b.iter(|| {
            aligner
                .align(&photo, FaceSelection::Largest)
                .expect("align")
        })
    });
    let crop = aligner
        .align(&photo, FaceSelection::Largest)
        .expect("align")
        .image;
    c.bench_function("mobileface_embed_ndarray", |b| {
        b.iter(|| scorer.embed(&crop).expect("embed"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(15));
    targets = align
}
criterion_main!(benches);
