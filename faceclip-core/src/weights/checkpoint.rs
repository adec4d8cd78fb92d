//! Random-access checkpoint files: safetensors and PyTorch `.pt` zip archives.
//!
//! Opening a file reads only its index (names, dtypes, shapes, byte ranges). Tensor data is read
//! on demand, one tensor at a time, and cast to `f32`, so a multi-gigabyte bf16 checkpoint never
//! sits in memory twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::pickle::{unpickle, TorchTensorRef, Value};
use super::{DType, KeyRemap};
use crate::error::LoadError;

/// Where the bytes of one tensor live.
#[derive(Debug, Clone)]
enum Location {
    /// A contiguous byte range of the file.
    Range { start: u64, len: u64 },
    /// A (possibly strided) view of a storage record of a PyTorch archive.
    Torch(TorchTensorRef),
}

/// Index entry of one tensor.
#[derive(Debug, Clone)]
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    location: Location,
}

/// A stored record of a PyTorch zip archive.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Offset of the record's bytes in the file when stored uncompressed.
    data_start: Option<u64>,
    /// Size in bytes once uncompressed.
    size: u64,
    /// Index of the record in the zip directory.
    index: usize,
}

/// The on-disk format of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `.safetensors` file.
    Safetensors,
    /// A PyTorch `torch.save` zip archive (`.pt`, `.pth`, `.bin`).
    PyTorch,
}

/// Name, dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Key after remapping.
    pub key: String,
    /// Stored element type.
    pub dtype: DType,
    /// Stored shape.
    pub shape: Vec<usize>,
}

/// An opened checkpoint file: an index of its tensors and a handle to read them.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    entries: BTreeMap<String, Entry>,
    records: BTreeMap<String, Record>,
    file: Mutex<File>,
    archive: Option<Mutex<zip::ZipArchive<File>>>,
}

impl Checkpoint {
    /// Opens a checkpoint, detecting the format from the file's first bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| LoadError::Io {
            file: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(io)?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        if n == 4 && &magic == b"PK\x03\x04" {
            Self::open_pytorch(path, file)
        } else if n >= 2 && magic[..2] == [0x80, 0x02] {
            Err(LoadError::Corrupt {
                file: path,
                reason:
                    "legacy (pre-1.6, non-zip) torch.save format; re-save it with a current PyTorch"
                        .into(),
            })
        } else {
            Self::open_safetensors(path, file)
        }
    }

    fn open_safetensors(path: PathBuf, mut file: File) -> Result<Self, LoadError> {
        let corrupt = |reason: String| LoadError::Corrupt {
            file: path.clone(),
            reason,
        };
        let file_len = file
            .metadata()
            .map_err(|source| LoadError::Io {
                file: path.clone(),
                source,
            })?
            .len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)
            .map_err(|_| corrupt("file shorter than a safetensors header".into()))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > 100_000_000 || 8 + header_len > file_len {
            return Err(corrupt(format!(
                "header length {header_len} does not fit a {file_len}-byte file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| corrupt(format!("reading header: {e}")))?;
        let json: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| corrupt(format!("header is not valid JSON: {e}")))?;
        let map = json
            .as_object()
            .ok_or_else(|| corrupt("header is not a JSON object".into()))?;
        let data_start = 8 + header_len;
        let mut entries = BTreeMap::new();
        for (key, meta) in map {
            if key == "__metadata__" {
                continue;
            }
            let bad = |what: &str| corrupt(format!("tensor `{key}`: {what}"));
            let dtype =
                DType::from_safetensors(meta["dtype"].as_str().ok_or_else(|| bad("no dtype"))?);
            let shape = meta["shape"]
                .as_array()
                .ok_or_else(|| bad("no shape"))?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .map(|d| d as usize)
                        .ok_or_else(|| bad("shape is not a list of integers"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let offsets = meta["data_offsets"]
                .as_array()
                .ok_or_else(|| bad("no data_offsets"))?;
            let (start, end) = match offsets.as_slice() {
                [s, e] => (
                    s.as_u64().ok_or_else(|| bad("bad data_offsets"))?,
                    e.as_u64().ok_or_else(|| bad("bad data_offsets"))?,
                ),
                _ => return Err(bad("data_offsets must have two entries")),
            };
            if end < start || data_start + end > file_len {
                return Err(bad(&format!(
                    "data range {start}..{end} lies outside the file (truncated?)"
                )));
            }
            if let Some(size) = dtype.size() {
                let numel: usize = shape.iter().product();
                if (numel * size) as u64 != end - start {
                    return Err(bad(&format!(
                        "{} bytes stored for shape {shape:?} of {dtype}",
                        end - start
                    )));
                }
            }
            let location = Location::Range {
                start: data_start + start,
                len: end - start,
            };
            entries.insert(
                key.clone(),
                Entry {
                    dtype,
                    shape,
                    location,
                },
            );
        }
        Ok(Self {
            path,
            format: Format::Safetensors,
            entries,
            records: BTreeMap::new(),
            file: Mutex::new(file),
            archive: None,
        })
    }

    fn open_pytorch(path: PathBuf, file: File) -> Result<Self, LoadError> {
        let corrupt = |reason: String| LoadError::Corrupt {
            file: path.clone(),
            reason,
        };
        let reader = file.try_clone().map_err(|source| LoadError::Io {
            file: path.clone(),
            source,
        })?;
        let mut archive = zip::ZipArchive::new(reader)
            .map_err(|e| corrupt(format!("not a readable zip archive: {e}")))?;
        let pickle_name = archive
            .file_names()
            .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
            .map(str::to_string)
            .ok_or_else(|| {
                corrupt("no `<archive>/data.pkl` record: not a torch.save file".into())
            })?;
        let root = pickle_name.trim_end_matches("data.pkl").to_string();
        if let Ok(mut order) = archive.by_name(&format!("{root}byteorder")) {
            let mut s = String::new();
            order
                .read_to_string(&mut s)
                .map_err(|e| corrupt(format!("reading byteorder: {e}")))?;
            if s.trim() != "little" {
                return Err(corrupt(format!(
                    "big-endian archives are not supported (byteorder `{s}`)"
                )));
            }
        }
        let mut records = BTreeMap::new();
        for index in 0..archive.len() {
            let rec = archive
                .by_index_raw(index)
                .map_err(|e| corrupt(format!("zip record {index}: {e}")))?;
            let name = rec.name().to_string();
            if let Some(key) = name.strip_prefix(&format!("{root}data/")) {
                let data_start =
                    (rec.compression() == zip::CompressionMethod::Stored).then(|| rec.data_start());
                records.insert(
                    key.to_string(),
                    Record {
                        data_start,
                        size: rec.size(),
                        index,
                    },
                );
            }
        }
        let mut program = Vec::new();
        archive
            .by_name(&pickle_name)
            .and_then(|mut f| f.read_to_end(&mut program).map_err(Into::into))
            .map_err(|e| corrupt(format!("reading {pickle_name}: {e}")))?;
        let root_value = unpickle(&program).map_err(|e| corrupt(format!("{pickle_name}: {e}")))?;
        let mut tensors = Vec::new();
        flatten(root_value, String::new(), &mut tensors);
        if tensors.is_empty() {
            return Err(corrupt("the pickle holds no tensors".into()));
        }
        let mut entries = BTreeMap::new();
        for (key, t) in tensors {
            let record = records.get(&t.storage_key).ok_or_else(|| {
                corrupt(format!(
                    "tensor `{key}`: storage record `{}` missing",
                    t.storage_key
                ))
            })?;
            if let Some(size) = t.dtype.size() {
                let last = t
                    .shape
                    .iter()
                    .zip(&t.strides)
                    .map(|(d, s)| d.saturating_sub(1) * s)
                    .sum::<usize>();
                let needed = if t.shape.contains(&0) {
                    0
                } else {
                    (t.offset + last + 1) * size
                };
                if needed as u64 > record.size {
                    return Err(corrupt(format!(
                        "tensor `{key}` needs {needed} bytes of storage `{}` which holds {}",
                        t.storage_key, record.size
                    )));
                }
            }
            let entry = Entry {
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                location: Location::Torch(t),
            };
            entries.insert(key, entry);
        }
        Ok(Self {
            path,
            format: Format::PyTorch,
            entries,
            records,
            file: Mutex::new(file),
            archive: Some(Mutex::new(archive)),
        })
    }

    /// The file this checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected file format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// All stored keys (after remapping), sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of stored tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Name, dtype and shape of a stored tensor.
    pub fn info(&self, key: &str) -> Option<TensorInfo> {
        self.entries.get(key).map(|e| TensorInfo {
            key: key.to_string(),
            dtype: e.dtype.clone(),
            shape: e.shape.clone(),
        })
    }

    /// Renames every key with `remap`; fails if two keys end up with the same name.
    pub fn remap(mut self, remap: &KeyRemap) -> Result<Self, LoadError> {
        let mut renamed: BTreeMap<String, (String, Entry)> = BTreeMap::new();
        for (key, entry) in std::mem::take(&mut self.entries) {
            let target = remap.apply(&key);
            if let Some((first, _)) = renamed.get(&target) {
                return Err(LoadError::KeyCollision {
                    file: self.path.clone(),
                    first: first.clone(),
                    second: key,
                    target,
                });
            }
            renamed.insert(target, (key, entry));
        }
        self.entries = renamed.into_iter().map(|(k, (_, e))| (k, e)).collect();
        Ok(self)
    }

    /// Reads a float tensor as `f32` values in row-major order, with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let (entry, bytes) = self.read_bytes(key, true)?;
        let values = entry.dtype.decode_f32(&bytes).unwrap_or_default();
        Ok((values, entry.shape.clone()))
    }

    /// Reads an integer or boolean tensor as `i64` values in row-major order, with its shape
    /// (token ids, masks and other non-weight data).
    pub fn read_i64(&self, key: &str) -> Result<(Vec<i64>, Vec<usize>), LoadError> {
        let (entry, bytes) = self.read_bytes(key, false)?;
        let size = entry.dtype.size().unwrap_or(1);
        let values = bytes
            .chunks_exact(size)
            .map(|c| match entry.dtype {
                DType::I64 => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                DType::I16 => i16::from_le_bytes([c[0], c[1]]) as i64,
                DType::I8 => c[0] as i8 as i64,
                _ => c[0] as i64,
            })
            .collect();
        Ok((values, entry.shape.clone()))
    }

    /// The entry of `key` and its row-major bytes, if its dtype is a float type (`float`) or an
    /// integer/boolean type (`!float`).
    fn read_bytes(&self, key: &str, float: bool) -> Result<(&Entry, Vec<u8>), LoadError> {
        let entry = self.entries.get(key).ok_or_else(|| LoadError::MissingKey {
            file: self.path.clone(),
            key: key.to_string(),
            expected: Vec::new(),
        })?;
        let size = entry
            .dtype
            .size()
            .filter(|_| entry.dtype.is_float() == float);
        let size = size.ok_or_else(|| LoadError::UnsupportedDtype {
            file: self.path.clone(),
            key: key.to_string(),
            dtype: entry.dtype.clone(),
            expected: if float {
                "f32, f16, bf16 or f64"
            } else {
                "an integer or bool type"
            },
        })?;
        let bytes = match &entry.location {
            Location::Range { start, len } => self.read_range(*start, *len)?,
            Location::Torch(t) => self.read_torch(key, t, size)?,
        };
        Ok((entry, bytes))
    }

    fn read_range(&self, start: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        let io = |source| LoadError::Io {
            file: self.path.clone(),
            source,
        };
        let mut file = self.file.lock().map_err(|_| self.poisoned())?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    fn poisoned(&self) -> LoadError {
        LoadError::Corrupt {
            file: self.path.clone(),
            reason: "a previous read panicked".into(),
        }
    }

    /// Reads the bytes of a torch tensor view, gathering strided elements if needed.
    fn read_torch(&self, key: &str, t: &TorchTensorRef, size: usize) -> Result<Vec<u8>, LoadError> {
        let numel: usize = t.shape.iter().product();
        if numel == 0 {
            return Ok(Vec::new());
        }
        let record = self.records[&t.storage_key];
        let contiguous = is_contiguous(&t.shape, &t.strides);
        let (first, span) = if contiguous {
            (t.offset, numel)
        } else {
            let last: usize = t
                .shape
                .iter()
                .zip(&t.strides)
                .map(|(d, s)| (d - 1) * s)
                .sum();
            (t.offset, last + 1)
        };
        let (start, len) = ((first * size) as u64, (span * size) as u64);
        let raw = match record.data_start {
            Some(data_start) => self.read_range(data_start + start, len)?,
            None => {
                let mut archive = self
                    .archive
                    .as_ref()
                    .ok_or_else(|| self.poisoned())?
                    .lock()
                    .map_err(|_| self.poisoned())?;
                let mut rec = archive
                    .by_index(record.index)
                    .map_err(|e| LoadError::Corrupt {
                        file: self.path.clone(),
                        reason: format!("tensor `{key}`: {e}"),
                    })?;
                let mut all = Vec::new();
                rec.read_to_end(&mut all).map_err(|source| LoadError::Io {
                    file: self.path.clone(),
                    source,
                })?;
                all.get(start as usize..(start + len) as usize)
                    .ok_or_else(|| LoadError::Corrupt {
                        file: self.path.clone(),
                        reason: format!("tensor `{key}`: storage too short"),
                    })?
                    .to_vec()
            }
        };
        if contiguous {
            return Ok(raw);
        }
        let mut out = Vec::with_capacity(numel * size);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let at: usize = index
                .iter()
                .zip(&t.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
                * size;
            out.extend_from_slice(&raw[at..at + size]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(out)
    }
}

fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (d, s) in shape.iter().zip(strides).rev() {
        if *d != 1 && *s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

/// Collects every tensor of a (possibly nested) dict, joining nested keys with `.`.
fn flatten(value: Value, prefix: String, out: &mut Vec<(String, TorchTensorRef)>) {
    match value {
        Value::Tensor(t) => out.push((prefix, t)),
        Value::Dict(items) => {
            for (k, v) in items {
                let name = match k {
                    Value::Str(s) => s,
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(v, key, out);
            }
        }
        _ => {}
    }
}
