//! What the examples share: `--flag value` parsing and running a job on the backend chosen with
//! `--backend ndarray|wgpu|cuda|cuda-bf16` (each needs its cargo feature).

use std::collections::BTreeMap;
use std::error::Error;

use burn::tensor::backend::Backend;

/// Parsed `--flag value` pairs.
pub struct Flags(BTreeMap<String, String>);

impl Flags {
    /// Parses the process arguments; only `allowed` flags (without `--`) are accepted, and
    /// `--help` returns `usage` as the error.
    pub fn parse(allowed: &[&str], usage: &str) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Err(format!("usage: {usage}"));
            }
            let name = flag
                .strip_prefix("--")
                .filter(|n| allowed.contains(n) || *n == "backend")
                .ok_or_else(|| format!("unknown argument `{flag}` (try --help)"))?;
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            values.insert(name.to_string(), value);
        }
        Ok(Self(values))
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// The value of `--name`, or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }
}

/// An example's work, generic over the backend.
pub trait Job {
    /// Runs on `device`.
    fn run<B: Backend>(&self, device: &B::Device) -> Result<(), Box<dyn Error>>;
}

/// Runs `job` on the backend named by `--backend` (default ndarray).
pub fn run_on_backend(flags: &Flags, job: &impl Job) -> Result<(), Box<dyn Error>> {
    let backend = flags.get_or("backend", "ndarray");
    if backend.starts_with("cuda") {
        use faceclip::core::backend::{use_library, NvidiaLibrary};
        for library in [NvidiaLibrary::CublasLt, NvidiaLibrary::Cudnn] {
            if let Err(e) = use_library(library, true) {
                eprintln!("note: Burn's own kernels replace {}: {e}", library.name());
            }
        }
    }
    match backend.as_str() {
        #[cfg(feature = "ndarray")]
        "ndarray" => job.run::<faceclip::backend::NdArray>(&Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => job.run::<faceclip::backend::Wgpu>(&Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => job.run::<faceclip::backend::Cuda>(&Default::default()),
        // Weights and activations in bf16: half the memory, the GPU benchmarks' precision.
        #[cfg(feature = "cuda")]
        "cuda-bf16" => job.run::<faceclip::backend::CudaBf16>(&Default::default()),
        other => Err(format!(
            "backend `{other}` is unknown or not compiled in (enable its cargo feature)"
        )
        .into()),
    }
}

/// The public-domain demo photo shipped with the repository.
pub const DEMO_PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/astronaut.png");
