//! Element types found in checkpoint files and their conversion to `f32`.

use std::fmt;

/// The element type of a tensor stored in a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DType {
    /// IEEE 754 double precision.
    F64,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean (one byte per element).
    Bool,
    /// Any other type, by the name the file gives it.
    Other(String),
}

impl DType {
    /// Bytes per element, or `None` for types this crate cannot size.
    pub fn size(&self) -> Option<usize> {
        match self {
            DType::F64 | DType::I64 => Some(8),
            DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::BF16 | DType::I16 => Some(2),
            DType::I8 | DType::U8 | DType::Bool => Some(1),
            DType::Other(_) => None,
        }
    }

    /// Whether tensors of this type can be read as model weights (cast to `f32`).
    pub fn is_float(&self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// Parses a safetensors dtype tag (`"F32"`, `"BF16"`, ...).
    pub fn from_safetensors(tag: &str) -> DType {
        match tag {
            "F64" => DType::F64,
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "BOOL" => DType::Bool,
            other => DType::Other(other.to_string()),
        }
    }

    /// Parses a PyTorch legacy storage class name (`"FloatStorage"`, `"BFloat16Storage"`, ...).
    pub fn from_torch_storage(class: &str) -> DType {
        match class {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            other => DType::Other(other.to_string()),
        }
    }

    /// Decodes little-endian bytes of a float type into `f32` values.
    ///
    /// Returns `None` when the type is not a float type.
    pub fn decode_f32(&self, bytes: &[u8]) -> Option<Vec<f32>> {
        let out = match self {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            _ => return None,
        };
        Some(out)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::F64 => write!(f, "f64"),
            DType::F32 => write!(f, "f32"),
            DType::F16 => write!(f, "f16"),
            DType::BF16 => write!(f, "bf16"),
            DType::I64 => write!(f, "i64"),
            DType::I32 => write!(f, "i32"),
            DType::I16 => write!(f, "i16"),
            DType::I8 => write!(f, "i8"),
            DType::U8 => write!(f, "u8"),
            DType::Bool => write!(f, "bool"),
            DType::Other(name) => write!(f, "{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_half_types() {
        let bf = half::bf16::from_f32(1.5).to_le_bytes();
        assert_eq!(DType::BF16.decode_f32(&bf), Some(vec![1.5]));
        let h = half::f16::from_f32(-0.25).to_le_bytes();
        assert_eq!(DType::F16.decode_f32(&h), Some(vec![-0.25]));
        assert_eq!(DType::I64.decode_f32(&[0; 8]), None);
    }
}
