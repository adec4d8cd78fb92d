//! Image ⟷ tensor helpers: decoded pictures become `[3, H, W]` float tensors in `[0, 1]`, RGB.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use image::{DynamicImage, RgbImage};

use crate::error::InputError;

/// Reads an image file and converts it to RGB like PIL's `convert("RGB")`: grey is replicated
/// to three channels, alpha is dropped (not blended), 16-bit channels are scaled to 8 bits.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage, InputError> {
    let path = path.as_ref();
    let img = image::open(path).map_err(|e| InputError::Image {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    to_rgb(img)
}

/// Converts any decoded image to 8-bit RGB (see [`load_rgb`]); rejects zero-sized images.
pub fn to_rgb(img: DynamicImage) -> Result<RgbImage, InputError> {
    if img.width() == 0 || img.height() == 0 {
        return Err(InputError::Empty {
            what: "image".into(),
            shape: vec![img.height() as usize, img.width() as usize],
        });
    }
    Ok(img.to_rgb8())
}

/// `[3, H, W]` float tensor in `[0, 1]` (PyTorch `ToTensor`); rejects zero-sized images.
pub fn rgb_to_tensor<B: Backend>(
    img: &RgbImage,
    device: &B::Device,
) -> Result<Tensor<B, 3>, InputError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(InputError::Empty {
            what: "image".into(),
            shape: vec![3, h, w],
        });
    }
    let mut chw = vec![0f32; 3 * h * w];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = px[c] as f32 / 255.0;
        }
    }
    Ok(Tensor::from_data(TensorData::new(chw, [3, h, w]), device))
}

/// Checks that `[batch, channels, h, w]` is a non-empty RGB batch.
pub fn check_rgb_batch<B: Backend>(images: &Tensor<B, 4>, what: &str) -> Result<(), InputError> {
    let dims = images.dims();
    if dims.contains(&0) {
        return Err(InputError::Empty {
            what: what.into(),
            shape: dims.to_vec(),
        });
    }
    if dims[1] != 3 {
        return Err(InputError::Channels {
            what: what.into(),
            channels: dims[1],
        });
    }
    Ok(())
}

/// Converts a batch `[batch, 3, H, W]` with values in `[0, 1]` to 8-bit RGB images, rounding as
/// diffusers' `numpy_to_pil` (`round(x · 255)`); values outside `[0, 1]` are clamped.
pub fn images_from_tensor<B: Backend>(images: Tensor<B, 4>) -> Result<Vec<RgbImage>, InputError> {
    check_rgb_batch(&images, "image batch")?;
    let [batch, _, h, w] = images.dims();
    let values = images
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| InputError::Value {
            what: "image batch".into(),
            reason: format!("cannot read tensor data: {e:?}"),
        })?;
    let plane = h * w;
    Ok((0..batch)
        .map(|b| {
            let chw = &values[b * 3 * plane..(b + 1) * 3 * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                let px = |c: usize| (chw[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8;
                image::Rgb([px(0), px(1), px(2)])
            })
        })
        .collect())
}
