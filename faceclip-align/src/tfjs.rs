//! Reader of TensorFlow.js graph-model weights: `model.json` (the weights manifest) plus its
//! binary shard(s), concatenated little-endian values in manifest order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faceclip_core::LoadError;
use serde_json::Value;

use crate::host::{HostTensor, HostWeights};

/// Reads the float32 weights named in a TFJS manifest; int32 entries (paddings, shapes) are
/// converted to f32 as well. `shards` are the manifest's `paths`, in order, already loaded.
pub fn read_tfjs_weights(
    json: &[u8],
    shards: &[u8],
    file: impl AsRef<Path>,
) -> Result<HostWeights, LoadError> {
    let file: PathBuf = file.as_ref().to_path_buf();
    let corrupt = |reason: String| LoadError::Corrupt {
        file: file.clone(),
        reason,
    };
    let model: Value =
        serde_json::from_slice(json).map_err(|e| corrupt(format!("not a TFJS model.json: {e}")))?;
    let groups = model
        .get("weightsManifest")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("no `weightsManifest` array".into()))?;
    let mut tensors = BTreeMap::new();
    let mut offset = 0usize;
    for spec in groups.iter().flat_map(|g| {
        g.get("weights")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }) {
        let name = spec
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("a weight without a name".into()))?;
        if spec.get("quantization").is_some() {
            return Err(corrupt(format!(
                "weight `{name}` is quantized; only float32/int32 are supported"
            )));
        }
        let shape: Vec<usize> = spec
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt(format!("weight `{name}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt(format!("weight `{name}` has a non-integer dimension")))?;
        let dtype = spec
            .get("dtype")
            .and_then(Value::as_str)
            .unwrap_or("float32");
        let count: usize = shape.iter().product();
        let bytes = shards.get(offset..offset + 4 * count).ok_or_else(|| {
            corrupt(format!(
                "weight data ends before `{name}` ({} bytes, {} needed)",
                shards.len(),
                offset + 4 * count
            ))
        })?;
        let data = match dtype {
            "float32" => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "int32" => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            other => {
                return Err(corrupt(format!(
                    "weight `{name}` has unsupported dtype {other}"
                )))
            }
        };
        offset += 4 * count;
        tensors.insert(name.to_string(), HostTensor { shape, data });
    }
    if offset != shards.len() {
        return Err(corrupt(format!(
            "the manifest describes {offset} bytes of weights but the shards hold {}",
            shards.len()
        )));
    }
    Ok(HostWeights::new(file, tensors))
}
