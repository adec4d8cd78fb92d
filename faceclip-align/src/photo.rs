//! Reading photos for detection: any format the `image` crate decodes, converted to 8-bit RGB,
//! with the EXIF orientation applied so faces are upright as a viewer shows them.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use faceclip_core::image::to_rgb;
use faceclip_core::InputError;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Reads a photo file: decoded, EXIF-rotated (JPEG, TIFF, WebP), converted to RGB (grey is
/// replicated, alpha dropped, 16-bit scaled to 8-bit). Zero-sized images are refused.
///
/// Unlike PIL's `Image.open(...).convert("RGB")`, which ignores EXIF, a phone photo stored
/// sideways with an orientation tag comes out upright.
pub fn load_photo(path: impl AsRef<Path>) -> Result<RgbImage, InputError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| InputError::Image {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    decode(&bytes, path.to_path_buf())
}

/// Decodes an in-memory photo like [`load_photo`].
pub fn decode_photo(bytes: &[u8]) -> Result<RgbImage, InputError> {
    decode(bytes, PathBuf::from("<memory>"))
}

fn decode(bytes: &[u8], file: PathBuf) -> Result<RgbImage, InputError> {
    let error = |e: image::ImageError| InputError::Image {
        file: file.clone(),
        reason: e.to_string(),
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InputError::Image {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    let mut decoder = reader.into_decoder().map_err(error)?;
    let orientation = decoder.orientation().map_err(error)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(error)?;
    img.apply_orientation(orientation);
    to_rgb(img)
}
