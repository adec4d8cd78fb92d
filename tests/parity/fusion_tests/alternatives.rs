//! The swappable fusion modules: shapes, their formulas, deterministic seeding and selection
//! through [`FusionKind`]. They have no reference implementation to match.

use burn::tensor::{Distribution, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::to_vec;
use faceclip_core::weights::Weights;
use faceclip_fusion::{AnyFusion, FuserConfig, Fusion, FusionInput, FusionKind};

type B = NdArray;
const D: usize = 16;

fn input() -> FusionInput<B> {
    let device = Default::default();
    let r =
        |shape: [usize; 3]| Tensor::<B, 3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    FusionInput {
        text: r([2, 77, D]),
        text_pos: r([1, 77, D]),
        face: r([2, 144, D]),
        face_pos: r([1, 144, D]),
        identity: Tensor::random([2, 24], Distribution::Normal(0.0, 1.0), &device),
    }
}

fn kinds() -> Vec<FusionKind> {
    vec![
        FusionKind::FaceClip(FuserConfig {
            layers: 1,
            ..FuserConfig::with_ffn(D, 32)
        }),
        FusionKind::Additive { scale: 0.5 },
        FusionKind::CrossAttention { heads: 2 },
        FusionKind::Gated { heads: 2 },
    ]
}

#[test]
fn every_kind_maps_text_to_text_shape_and_is_seed_deterministic() {
    let device = Default::default();
    let x = input();
    for kind in kinds() {
        let a = AnyFusion::<B>::load(&Weights::seeded(&device, 7), &kind, D, 24).unwrap();
        let b = AnyFusion::<B>::load(&Weights::seeded(&device, 7), &kind, D, 24).unwrap();
        let c = AnyFusion::<B>::load(&Weights::seeded(&device, 8), &kind, D, 24).unwrap();
        let (ya, yb, yc) = (
            a.fuse(x.clone()).unwrap(),
            b.fuse(x.clone()).unwrap(),
            c.fuse(x.clone()).unwrap(),
        );
        assert_eq!(ya.dims(), [2, 77, D], "{kind:?}");
        assert_eq!(
            to_vec(ya.clone()),
            to_vec(yb),
            "{kind:?}: same seed, same module"
        );
        assert_ne!(
            to_vec(ya.clone()),
            to_vec(yc),
            "{kind:?}: other seed, other module"
        );
        assert_ne!(
            to_vec(ya),
            to_vec(x.text.clone()),
            "{kind:?}: the face changes the text"
        );
    }
}

#[test]
fn additive_fusion_shifts_every_token_by_the_same_vector() {
    let x = input();
    let fusion = AnyFusion::<B>::load(
        &Weights::seeded(&Default::default(), 1),
        &FusionKind::Additive { scale: 0.5 },
        D,
        24,
    )
    .unwrap();
    let shift = fusion.fuse(x.clone()).unwrap() - x.text;
    let first = shift.clone().slice([0..2, 0..1]);
    let spread = to_vec((shift - first).abs())
        .into_iter()
        .fold(0.0, f32::max);
    assert!(spread < 1e-6, "spread {spread}");
}

#[test]
fn gated_fusion_stays_between_text_and_attended_face() {
    // out = (1 − g)·text + g·a with g ∈ (0, 1): each channel lies between text and the
    // cross-attention output, so it cannot leave the range of the two.
    let x = input();
    let device = Default::default();
    let gated = AnyFusion::<B>::load(
        &Weights::seeded(&device, 3),
        &FusionKind::Gated { heads: 2 },
        D,
        24,
    )
    .unwrap();
    let out = to_vec(gated.fuse(x.clone()).unwrap());
    let text = to_vec(x.text.clone());
    let cross = AnyFusion::<B>::load(
        &Weights::seeded(&device, 3).pp("cross"),
        &FusionKind::CrossAttention { heads: 2 },
        D,
        24,
    )
    .unwrap();
    let attended: Vec<f32> = to_vec(cross.fuse(x).unwrap())
        .iter()
        .zip(&text)
        .map(|(y, t)| y - t)
        .collect();
    let outside = out
        .iter()
        .zip(text.iter().zip(&attended))
        .filter(|(o, (t, a))| **o < t.min(**a) - 1e-5 || **o > t.max(**a) + 1e-5)
        .count();
    assert_eq!(outside, 0);
}

#[test]
fn faceclip_kind_checks_its_width() {
    let kind = FusionKind::FaceClip(FuserConfig::with_ffn(32, 64));
    let err =
        AnyFusion::<B>::load(&Weights::random(&Default::default()), &kind, D, 24).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
