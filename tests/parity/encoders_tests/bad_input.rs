//! Bad input to the encoders gives typed errors, never a panic.

use burn::tensor::{Int, Tensor, TensorData};
use faceclip_core::backend::NdArray;
use faceclip_core::nn::Activation;
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};
use faceclip_encoders::{FaceVit, FaceVitConfig, TextTower, TextTowerConfig, TokenOverride};

type B = NdArray;

fn tiny_vit() -> FaceVit<B> {
    FaceVit::load(
        &Weights::random(&Default::default()),
        FaceVitConfig::sized(16, 1, 2, 8),
    )
    .unwrap()
}

fn tiny_tower() -> TextTower<B> {
    TextTower::load(
        &Weights::random(&Default::default()),
        TextTowerConfig::sized(16, 1, 2, Activation::QuickGelu),
    )
    .unwrap()
}

#[test]
fn face_vit_rejects_grey_and_rgba_tensors() {
    let vit = tiny_vit();
    for channels in [1, 4] {
        let images = Tensor::<B, 4>::zeros([1, channels, 112, 112], &Default::default());
        match vit.forward(images) {
            Err(InputError::Channels { channels: c, .. }) => assert_eq!(c, channels),
            other => panic!("expected a channel error, got {other:?}"),
        }
    }
}

#[test]
fn face_vit_rejects_zero_sized_images() {
    let vit = tiny_vit();
    for shape in [[1, 3, 0, 112], [1, 3, 112, 0], [0, 3, 112, 112]] {
        let images = Tensor::<B, 4>::from_data(
            TensorData::new(Vec::<f32>::new(), shape),
            &Default::default(),
        );
        assert!(
            matches!(vit.forward(images), Err(InputError::Empty { .. })),
            "{shape:?}"
        );
    }
}

#[test]
fn face_vit_accepts_any_size_rgb() {
    let vit = tiny_vit();
    for (h, w) in [(1, 1), (50, 300), (448, 448)] {
        let out = vit
            .forward(Tensor::<B, 4>::ones([2, 3, h, w], &Default::default()))
            .unwrap();
        assert_eq!(out.identity.dims(), [2, 8]);
    }
}

#[test]
fn grey_and_rgba_pictures_convert_like_pil() {
    let grey =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([200])));
    let rgb = faceclip_core::image::to_rgb(grey).unwrap();
    assert_eq!(rgb.get_pixel(0, 0).0, [200, 200, 200]);
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
        2,
        2,
        image::Rgba([10, 20, 30, 0]),
    ));
    assert_eq!(
        faceclip_core::image::to_rgb(rgba)
            .unwrap()
            .get_pixel(1, 1)
            .0,
        [10, 20, 30],
        "alpha dropped, not blended"
    );
    let empty = image::DynamicImage::ImageRgb8(image::RgbImage::new(0, 5));
    assert!(matches!(
        faceclip_core::image::to_rgb(empty),
        Err(InputError::Empty { .. })
    ));
    let err = faceclip_core::image::load_rgb("/nonexistent/face.png").unwrap_err();
    assert!(matches!(err, InputError::Image { .. }), "{err}");
}

#[test]
fn text_tower_rejects_out_of_range_ids_and_lengths() {
    let tower = tiny_tower();
    let device = Default::default();
    let ids =
        |v: Vec<i64>, n: usize| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, n]), &device);
    match tower.forward(ids(vec![49406, 49408, 0], 3), None) {
        Err(InputError::OutOfRange { value, limit, .. }) => {
            assert_eq!((value, limit), (49408, 49408))
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert!(matches!(
        tower.forward(ids(vec![-1, 5], 2), None),
        Err(InputError::OutOfRange { value: -1, .. })
    ));
    assert!(matches!(
        tower.forward(ids(vec![1; 78], 78), None),
        Err(InputError::Shape { .. })
    ));
    assert!(
        tower.forward(ids(vec![49406, 320, 49407], 3), None).is_ok(),
        "shorter sequences are fine"
    );
}

#[test]
fn token_override_with_wrong_shapes_is_rejected() {
    let tower = tiny_tower();
    let device = Default::default();
    let ids = Tensor::<B, 2, Int>::zeros([2, 77], &device);
    let bad = TokenOverride {
        mask: Tensor::<B, 2, Int>::zeros([2, 77], &device).equal_elem(1),
        embeddings: Tensor::zeros([2, 15], &device),
    };
    assert!(matches!(
        tower.forward(ids, Some(&bad)),
        Err(InputError::Shape { .. })
    ));
}

#[test]
fn invalid_configs_are_rejected() {
    let vb = Weights::<B>::random(&Default::default());
    let err = TextTower::load(&vb, TextTowerConfig::sized(30, 1, 4, Activation::Gelu)).unwrap_err();
    assert!(matches!(err, LoadError::Config(_)), "{err}");
    let err = FaceVit::load(
        &vb,
        FaceVitConfig {
            patch_size: 200,
            ..FaceVitConfig::sized(16, 1, 2, 8)
        },
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Config(_)), "{err}");
}
