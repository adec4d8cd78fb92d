//! One model's weights spread over several checkpoint files: a Hugging Face shard index
//! (`*.safetensors.index.json`, `pytorch_model.bin.index.json`) and the shards it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Checkpoint, KeyRemap, TensorInfo};
use crate::error::LoadError;

/// A single checkpoint or a sharded one, read through one key space.
#[derive(Debug)]
pub struct CheckpointSet {
    /// The file the user named: the checkpoint itself or the shard index.
    path: PathBuf,
    shards: Vec<Checkpoint>,
    /// Which shard holds each key.
    owner: BTreeMap<String, usize>,
}

impl CheckpointSet {
    /// Opens `path`: a shard index when its name ends in `.index.json`, otherwise a single
    /// safetensors or `.pt` file. Every shard an index names must exist and hold the keys the
    /// index assigns to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let is_index = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".index.json"));
        if is_index {
            Self::open_index(path)
        } else {
            Ok(Self::from(Checkpoint::open(&path)?))
        }
    }

    fn open_index(path: PathBuf) -> Result<Self, LoadError> {
        let corrupt = |reason: String| LoadError::Corrupt {
            file: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
            file: path.clone(),
            source,
        })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| corrupt(format!("shard index is not valid JSON: {e}")))?;
        let map = json["weight_map"]
            .as_object()
            .ok_or_else(|| corrupt("shard index has no `weight_map` object".into()))?;
        let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| corrupt(format!("`weight_map.{key}` is not a file name")))?;
            if shard.contains(['/', '\\']) || shard == ".." {
                return Err(corrupt(format!(
                    "shard `{shard}` of `{key}` is not a plain file name"
                )));
            }
            listed
                .entry(shard.to_string())
                .or_default()
                .push(key.clone());
        }
        if listed.is_empty() {
            return Err(corrupt("shard index lists no tensors".into()));
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let missing: Vec<String> = listed
            .keys()
            .filter(|shard| !dir.join(shard).is_file())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::MissingShards {
                index: path,
                shards: missing,
            });
        }
        let mut shards = Vec::with_capacity(listed.len());
        for (shard, keys) in &listed {
            let checkpoint = Checkpoint::open(dir.join(shard))?;
            if let Some(key) = keys.iter().find(|k| checkpoint.info(k).is_none()) {
                return Err(LoadError::Corrupt {
                    file: checkpoint.path().to_path_buf(),
                    reason: format!(
                        "the index {} places `{key}` in this shard, which does not hold it",
                        path.display()
                    ),
                });
            }
            shards.push(checkpoint);
        }
        Self::index(path, shards)
    }

    /// Builds the key → shard map; a key stored in two shards is an error.
    fn index(path: PathBuf, shards: Vec<Checkpoint>) -> Result<Self, LoadError> {
        let mut owner = BTreeMap::new();
        for (i, shard) in shards.iter().enumerate() {
            for key in shard.keys() {
                if let Some(first) = owner.insert(key.to_string(), i) {
                    return Err(LoadError::KeyCollision {
                        file: path,
                        first: format!("{} in {}", key, shards[first].path().display()),
                        second: format!("{} in {}", key, shard.path().display()),
                        target: key.to_string(),
                    });
                }
            }
        }
        Ok(Self {
            path,
            shards,
            owner,
        })
    }

    /// Renames every key of every shard with `remap`.
    pub fn remap(self, remap: &KeyRemap) -> Result<Self, LoadError> {
        let shards = self
            .shards
            .into_iter()
            .map(|s| s.remap(remap))
            .collect::<Result<Vec<_>, _>>()?;
        Self::index(self.path, shards)
    }

    /// The file that was opened (the index for a sharded checkpoint).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The opened files, one per shard.
    pub fn shards(&self) -> &[Checkpoint] {
        &self.shards
    }

    /// All keys of all shards, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.owner.keys().map(String::as_str)
    }

    /// The shard holding `key`.
    pub fn shard_of(&self, key: &str) -> Option<&Checkpoint> {
        self.owner.get(key).map(|&i| &self.shards[i])
    }

    /// Name, dtype and shape of a stored tensor.
    pub fn info(&self, key: &str) -> Option<TensorInfo> {
        self.shard_of(key).and_then(|s| s.info(key))
    }

    /// Reads a float tensor as `f32` values with its shape.
    pub fn read_f32(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        match self.shard_of(key) {
            Some(shard) => shard.read_f32(key),
            None => Err(LoadError::MissingKey {
                file: self.path.clone(),
                key: key.to_string(),
                expected: Vec::new(),
            }),
        }
    }
}

impl From<Checkpoint> for CheckpointSet {
    fn from(checkpoint: Checkpoint) -> Self {
        let path = checkpoint.path().to_path_buf();
        let owner = checkpoint.keys().map(|k| (k.to_string(), 0)).collect();
        Self {
            path,
            shards: vec![checkpoint],
            owner,
        }
    }
}
