//! [`Weights`]: scoped access to a checkpoint while a model's module tree is built.
//!
//! Model constructors take a `Weights`, descend with [`Weights::pp`] as the module tree nests
//! (so a key is exactly the path of the parameter) and ask for tensors by name and shape. Every
//! request is recorded, so after construction [`Weights::finish`] reports applied, missing,
//! ignored and unexpected keys, and strict loading can refuse a checkpoint that does not match.
//! The same constructors build random-weight models from [`Weights::random`].

use crate::rng::SplitMix64;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};

use super::{Checkpoint, CheckpointSet, KeyRemap};
use crate::error::LoadError;
use crate::lock;

/// Key components a strict load tolerates being left unused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IgnoreRules {
    prefixes: Vec<String>,
}

impl IgnoreRules {
    /// Tolerate nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The tensors of the released FaceCLIP checkpoints that inference never reads (spec §10
    /// item 13, §7.2): `enc_output*`, `logit_scale`, `logit_bias`, `text_projection`,
    /// `mask_token`, `num_batches_tracked`, FaceT5's `face_pos_proj` (ignored only where no
    /// module reads it) and Hugging Face's `position_ids` buffers.
    pub fn faceclip() -> Self {
        [
            "enc_output",
            "face_pos_proj",
            "position_ids",
            "logit_scale",
            "logit_bias",
            "text_projection",
            "mask_token",
            "num_batches_tracked",
        ]
        .into_iter()
        .fold(Self::none(), Self::with)
    }

    /// Also tolerates keys with a dot-separated component starting with `component`.
    pub fn with(mut self, component: impl Into<String>) -> Self {
        self.prefixes.push(component.into());
        self
    }

    /// Whether `key` may be left unused.
    pub fn matches(&self, key: &str) -> bool {
        key.split('.')
            .any(|part| self.prefixes.iter().any(|p| part.starts_with(p.as_str())))
    }
}

/// How strictly a checkpoint must match the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Strict: a missing key or an unused, non-ignorable key is an error. Otherwise missing
    /// tensors are randomly initialised and listed in the report.
    pub strict: bool,
    /// Keys that may stay unused.
    pub ignore: IgnoreRules,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            strict: true,
            ignore: IgnoreRules::faceclip(),
        }
    }
}

/// What a load did, key by key (all keys relative to the file, after remapping).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys copied into the model.
    pub applied: Vec<String>,
    /// Keys the model asked for that the file lacks (randomly initialised; non-strict only).
    pub missing: Vec<String>,
    /// Unused keys that the ignore rules allow.
    pub ignored: Vec<String>,
    /// Unused keys that no rule allows.
    pub unexpected: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} applied, {} missing, {} ignored, {} unexpected",
            self.applied.len(),
            self.missing.len(),
            self.ignored.len(),
            self.unexpected.len()
        )
    }
}

enum Source {
    File(CheckpointSet),
    Random,
    Seeded(u64),
}

struct Shared<B: Backend> {
    source: Source,
    device: B::Device,
    options: LoadOptions,
    applied: Mutex<BTreeSet<String>>,
    missing: Mutex<BTreeSet<String>>,
    requested: Mutex<Vec<(String, Vec<usize>)>>,
}

/// A scoped view of a weight source (a checkpoint or a random initialiser) on one device.
pub struct Weights<B: Backend> {
    shared: Arc<Shared<B>>,
    prefix: String,
}

impl<B: Backend> Clone for Weights<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

/// Host-side data of one requested tensor, before it is placed on the device.
enum Fetched {
    Host(Vec<f32>),
    Random(Distribution),
}

impl<B: Backend> Weights<B> {
    /// Weights read from an opened checkpoint.
    pub fn from_checkpoint(
        checkpoint: Checkpoint,
        options: LoadOptions,
        device: &B::Device,
    ) -> Self {
        Self::from_checkpoints(checkpoint.into(), options, device)
    }

    /// Weights read from an opened, possibly sharded, checkpoint.
    pub fn from_checkpoints(
        checkpoints: CheckpointSet,
        options: LoadOptions,
        device: &B::Device,
    ) -> Self {
        Self::with_source(Source::File(checkpoints), options, device)
    }

    /// Opens `path` (safetensors, `.pt`, or a `*.index.json` shard index), applies `remap` and
    /// reads from it.
    pub fn open(
        path: impl AsRef<Path>,
        remap: &KeyRemap,
        options: LoadOptions,
        device: &B::Device,
    ) -> Result<Self, LoadError> {
        let checkpoints = CheckpointSet::open(path)?.remap(remap)?;
        Ok(Self::from_checkpoints(checkpoints, options, device))
    }

    /// Random weights (uniform, scaled by fan-in; norm scales near 1): for shape checks,
    /// benchmarks and tests. Every request succeeds.
    pub fn random(device: &B::Device) -> Self {
        Self::with_source(
            Source::Random,
            LoadOptions {
                strict: false,
                ignore: IgnoreRules::none(),
            },
            device,
        )
    }

    /// Random weights like [`random`](Self::random), but generated on the host from `seed` and
    /// each tensor's key: the same seed builds the same model on every backend, whatever the
    /// order of construction or other threads (for modules trained from scratch, such as the
    /// fusion alternatives).
    pub fn seeded(device: &B::Device, seed: u64) -> Self {
        let options = LoadOptions {
            strict: false,
            ignore: IgnoreRules::none(),
        };
        Self::with_source(Source::Seeded(seed), options, device)
    }

    fn with_source(source: Source, options: LoadOptions, device: &B::Device) -> Self {
        let shared = Shared {
            source,
            device: device.clone(),
            options,
            applied: Mutex::new(BTreeSet::new()),
            missing: Mutex::new(BTreeSet::new()),
            requested: Mutex::new(Vec::new()),
        };
        Self {
            shared: Arc::new(shared),
            prefix: String::new(),
        }
    }

    /// The same source, one level deeper in the key tree (`prefix.name`).
    pub fn pp(&self, name: impl fmt::Display) -> Self {
        Self {
            shared: self.shared.clone(),
            prefix: self.key(&name.to_string()),
        }
    }

    /// The full key of `name` in this scope.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The scope of this view (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &B::Device {
        &self.shared.device
    }

    /// The checkpoint file, or `<random>` for random weights.
    pub fn file(&self) -> PathBuf {
        match &self.shared.source {
            Source::File(c) => c.path().to_path_buf(),
            Source::Random | Source::Seeded(_) => PathBuf::from("<random>"),
        }
    }

    /// Whether the source holds `name` (always false for random weights).
    pub fn contains(&self, name: &str) -> bool {
        match &self.shared.source {
            Source::File(c) => c.info(&self.key(name)).is_some(),
            Source::Random | Source::Seeded(_) => false,
        }
    }

    /// Loads tensor `name` of exactly `shape`.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, LoadError> {
        let fetched = self.fetch(name, &shape)?;
        self.place(&self.key(name), vec![fetched], &[shape[D - 1]], shape)
    }

    /// Loads a PyTorch `Linear` weight stored `[d_out, d_in]` and returns it transposed to
    /// Burn's `[d_in, d_out]` layout.
    pub fn linear_weight(
        &self,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Tensor<B, 2>, LoadError> {
        self.linear_weights_concat(&[name], d_in, &[d_out])
    }

    /// Loads the PyTorch `Linear` weights `names` (weight `i` stored `[d_outs[i], d_in]`) as
    /// one `[d_in, Σ d_outs]` tensor, their outputs side by side in the order given: a packed
    /// projection whose checkpoint stores its parts apart (attention's q, k and v, or layers
    /// that read the same input). The parts are joined before they reach the device, which
    /// holds only the result.
    pub fn linear_weights_concat(
        &self,
        names: &[&str],
        d_in: usize,
        d_outs: &[usize],
    ) -> Result<Tensor<B, 2>, LoadError> {
        let key = self.keys(names, d_outs)?;
        let parts = names
            .iter()
            .zip(d_outs)
            .map(|(name, &d_out)| self.fetch_linear(name, d_in, d_out))
            .collect::<Result<Vec<_>, _>>()?;
        self.place(&key, parts, d_outs, [d_in, d_outs.iter().sum()])
    }

    /// Loads the 1-D tensors `names` (tensor `i` of `lens[i]` values) as one tensor of
    /// `Σ lens` values (a packed projection's biases).
    pub fn tensors_concat(
        &self,
        names: &[&str],
        lens: &[usize],
    ) -> Result<Tensor<B, 1>, LoadError> {
        let key = self.keys(names, lens)?;
        let parts = names
            .iter()
            .zip(lens)
            .map(|(name, &len)| self.fetch(name, &[len]))
            .collect::<Result<Vec<_>, _>>()?;
        self.place(&key, parts, lens, [lens.iter().sum()])
    }

    /// The full keys of `names` joined with `+` (for messages); an error for no names or
    /// for a size list `sizes` of another length.
    fn keys(&self, names: &[&str], sizes: &[usize]) -> Result<String, LoadError> {
        if names.is_empty() {
            return Err(LoadError::Config(format!(
                "{}: no tensors to concatenate",
                self.prefix
            )));
        }
        if names.len() != sizes.len() {
            return Err(LoadError::Config(format!(
                "{}: {} tensors to concatenate ({}) but {} sizes ({sizes:?})",
                self.prefix,
                names.len(),
                names.join(", "),
                sizes.len()
            )));
        }
        Ok(names
            .iter()
            .map(|name| self.key(name))
            .collect::<Vec<_>>()
            .join("+"))
    }

    /// A `Linear` weight stored `[d_out, d_in]`, fetched in Burn's `[d_in, d_out]` layout.
    fn fetch_linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<Fetched, LoadError> {
        Ok(match self.fetch(name, &[d_out, d_in])? {
            Fetched::Host(values) => {
                let mut t = vec![0f32; values.len()];
                for (o, row) in values.chunks_exact(d_in.max(1)).enumerate() {
                    for (i, v) in row.iter().enumerate() {
                        t[i * d_out + o] = *v;
                    }
                }
                Fetched::Host(t)
            }
            random => random,
        })
    }

    /// Creates weight `key` of `shape` on the device from `parts`, slices of its last axis
    /// `widths` wide side by side (one part: the whole tensor), in the backend's persistent
    /// allocation mode: on CubeCL (wgpu, CUDA) each weight gets a buffer of its own size
    /// instead of a slice of the shared pages activations use, so the pool holds little beyond
    /// the live weights (as Burn's own parameter loading does). Host parts are joined on the host;
    /// random parts are lazy on fusion backends, so they are computed before the mode ends,
    /// and work queued before them runs first, outside the mode (else its outputs, activations
    /// or inputs of the caller's, would get persistent buffers of their own size too).
    fn place<const D: usize>(
        &self,
        key: &str,
        parts: Vec<Fetched>,
        widths: &[usize],
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, LoadError> {
        let device = &self.shared.device;
        let part_shape = |width: usize| {
            let mut part = shape;
            part[D - 1] = width;
            part
        };
        let sync = || {
            B::sync(device).map_err(|error| LoadError::Device {
                key: key.to_string(),
                reason: error.to_string(),
            })
        };
        let random = parts.iter().any(|part| matches!(part, Fetched::Random(_)));
        if random {
            sync()?;
        }
        B::memory_persistent_allocations(device, parts, |parts| {
            if !random {
                let host: Vec<Vec<f32>> = parts
                    .into_iter()
                    .filter_map(|part| match part {
                        Fetched::Host(values) => Some(values),
                        Fetched::Random(_) => None,
                    })
                    .collect();
                let values = concat_rows(host, widths);
                return Ok(Tensor::from_data(TensorData::new(values, shape), device));
            }
            let mut tensors: Vec<Tensor<B, D>> = parts
                .into_iter()
                .zip(widths)
                .map(|(part, &width)| match part {
                    Fetched::Host(values) => {
                        Tensor::from_data(TensorData::new(values, part_shape(width)), device)
                    }
                    Fetched::Random(dist) => Tensor::random(part_shape(width), dist, device),
                })
                .collect();
            let tensor = match tensors.len() {
                1 => tensors.remove(0),
                _ => Tensor::cat(tensors, D - 1),
            };
            sync()?;
            Ok(tensor)
        })
    }

    fn fetch(&self, name: &str, shape: &[usize]) -> Result<Fetched, LoadError> {
        let key = self.key(name);
        lock(&self.shared.requested).push((key.clone(), shape.to_vec()));
        let checkpoint = match &self.shared.source {
            Source::File(c) => c,
            Source::Random => {
                let (low, high) = random_range(&key, shape);
                return Ok(Fetched::Random(Distribution::Uniform(low, high)));
            }
            Source::Seeded(seed) => return Ok(Fetched::Host(seeded_values(*seed, &key, shape))),
        };
        let Some(info) = checkpoint.info(&key) else {
            if self.shared.options.strict {
                return Err(LoadError::MissingKey {
                    file: self.file(),
                    key,
                    expected: shape.to_vec(),
                });
            }
            lock(&self.shared.missing).insert(key.clone());
            let (low, high) = random_range(&key, shape);
            return Ok(Fetched::Random(Distribution::Uniform(low, high)));
        };
        if info.shape != shape {
            let file = checkpoint.shard_of(&key).map(|s| s.path().to_path_buf());
            return Err(LoadError::ShapeMismatch {
                file: file.unwrap_or_else(|| self.file()),
                key,
                expected: shape.to_vec(),
                found: info.shape,
            });
        }
        let (values, _) = checkpoint.read_f32(&key)?;
        lock(&self.shared.applied).insert(key);
        Ok(Fetched::Host(values))
    }

    /// Every key requested so far, in request order, with the shape asked for in the
    /// checkpoint's (PyTorch) layout — a `Linear` weight as `[d_out, d_in]`. Building a model
    /// from [`random`](Self::random) weights and reading this lists the checkpoint it expects.
    pub fn requested(&self) -> Vec<(String, Vec<usize>)> {
        lock(&self.shared.requested).clone()
    }

    /// Applied / missing / ignored / unexpected keys under this view's scope.
    pub fn report(&self) -> LoadReport {
        let in_scope = |k: &str| {
            self.prefix.is_empty()
                || k == self.prefix
                || k.starts_with(&format!("{}.", self.prefix))
        };
        let applied = lock(&self.shared.applied);
        let mut report = LoadReport {
            applied: applied.iter().filter(|k| in_scope(k)).cloned().collect(),
            missing: lock(&self.shared.missing)
                .iter()
                .filter(|k| in_scope(k))
                .cloned()
                .collect(),
            ..LoadReport::default()
        };
        if let Source::File(c) = &self.shared.source {
            for key in c.keys().filter(|k| in_scope(k) && !applied.contains(*k)) {
                if self.shared.options.ignore.matches(key) {
                    report.ignored.push(key.to_string());
                } else {
                    report.unexpected.push(key.to_string());
                }
            }
        }
        report
    }

    /// The report of this scope; in strict mode, an error if any key is unexpected.
    pub fn finish(&self) -> Result<LoadReport, LoadError> {
        let report = self.report();
        if self.shared.options.strict && !report.unexpected.is_empty() {
            return Err(LoadError::UnexpectedKeys {
                file: self.file(),
                prefix: self.prefix.clone(),
                keys: report.unexpected,
            });
        }
        Ok(report)
    }
}

/// Row-major tensors with rows of `widths[i]` values (part `i`) laid side by side: row `r` of
/// the result is row `r` of every part in turn.
fn concat_rows(mut parts: Vec<Vec<f32>>, widths: &[usize]) -> Vec<f32> {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    let rows = total / widths.iter().sum::<usize>().max(1);
    let mut values = Vec::with_capacity(total);
    for row in 0..rows {
        for (part, &width) in parts.iter().zip(widths) {
            values.extend_from_slice(&part[row * width..(row + 1) * width]);
        }
    }
    values
}

/// Range of the uniform random initialisation, chosen from the parameter's role so random
/// models stay numerically tame: norm scales near 1, variances positive, others ±1/√fan-in.
fn random_range(key: &str, shape: &[usize]) -> (f64, f64) {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    if shape.len() == 1 {
        return match leaf {
            "running_var" => (0.5, 1.5),
            "weight" | "gamma" => (0.9, 1.1),
            _ => (-0.1, 0.1),
        };
    }
    let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
    let k = (1.0 / fan_in as f64).sqrt();
    (-k, k)
}

/// Uniform values in [`random_range`] from a SplitMix64 stream keyed by `seed` and the key's
/// FNV-1a hash.
fn seeded_values(seed: u64, key: &str, shape: &[usize]) -> Vec<f32> {
    let (low, high) = random_range(key, shape);
    let mut rng = SplitMix64::new(
        key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        }) ^ seed,
    );
    let count: usize = shape.iter().product();
    (0..count)
        .map(|_| (low + (high - low) * rng.next_unit()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_values_depend_on_seed_and_key_only() {
        let a = seeded_values(1, "x.weight", &[4, 8]);
        assert_eq!(a, seeded_values(1, "x.weight", &[4, 8]));
        assert_ne!(a, seeded_values(2, "x.weight", &[4, 8]));
        assert_ne!(a, seeded_values(1, "y.weight", &[4, 8]));
        let k = (1.0f32 / 8.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= k));
    }

    #[test]
    fn ignore_rules_match_components() {
        let r = IgnoreRules::faceclip();
        assert!(r.matches("face_clip_l.fuser.enc_output_norm.weight"));
        assert!(r.matches("x.feature.1.num_batches_tracked"));
        assert!(!r.matches("face_clip_l.proj1.weight"));
        assert!(!IgnoreRules::none().matches("logit_scale"));
    }
}
