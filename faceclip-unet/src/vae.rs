//! diffusers' `AutoencoderKL`: encoder to the latent mean, decoder back to images.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::GroupNorm;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::image::check_rgb_batch;
use faceclip_core::nn::{conv_forward, group_norm_silu};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

use crate::blocks::{
    check_groups, load_conv, load_conv3, load_group_norm, upsample_nearest_2x, ResnetBlock2D,
    SpatialSelfAttention,
};
use crate::json::ConfigJson;

/// The configuration of an `AutoencoderKL` (the keys of diffusers' `config.json` that matter).
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Image channels in.
    pub in_channels: usize,
    /// Image channels out.
    pub out_channels: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Width of each resolution level, highest resolution first.
    pub block_out_channels: Vec<usize>,
    /// ResNet blocks per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// Group-norm groups.
    pub norm_num_groups: usize,
    /// Latents are multiplied by this after encoding (0.13025 for SDXL, 0.3611 for FLUX).
    pub scaling_factor: f64,
    /// Subtracted from latents before scaling (0 for SDXL, 0.1159 for FLUX).
    pub shift_factor: f64,
    /// Whether the mid blocks have self-attention.
    pub mid_block_add_attention: bool,
    /// Whether the 1×1 `quant_conv` follows the encoder.
    pub use_quant_conv: bool,
    /// Whether the 1×1 `post_quant_conv` precedes the decoder.
    pub use_post_quant_conv: bool,
}

/// Epsilon of every group norm in the VAE.
const NORM_EPS: f64 = 1e-6;

impl VaeConfig {
    /// SDXL base's VAE (`sdxl-vae/config.json`): 128/256/512/512, 2 layers per level, 32
    /// groups, scaling factor 0.13025.
    pub fn sdxl() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 4,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            norm_num_groups: 32,
            scaling_factor: 0.13025,
            shift_factor: 0.0,
            mid_block_add_attention: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
        }
    }

    /// FLUX.1-dev's VAE (`vae/config.json`): SDXL's layout with 16 latent channels, no quant
    /// convolutions, scaling factor 0.3611 and shift 0.1159.
    pub fn flux() -> Self {
        Self {
            latent_channels: 16,
            scaling_factor: 0.3611,
            shift_factor: 0.1159,
            use_quant_conv: false,
            use_post_quant_conv: false,
            ..Self::sdxl()
        }
    }

    /// Reads diffusers' `config.json`; absent keys take diffusers' defaults. Only the plain
    /// `DownEncoderBlock2D`/`UpDecoderBlock2D` layout with SiLU is supported.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let cfg = ConfigJson::parse(json, "VAE config.json")?;
        for (key, expected) in [
            ("down_block_types", "DownEncoderBlock2D"),
            ("up_block_types", "UpDecoderBlock2D"),
        ] {
            if let Some(other) = cfg.strings(key, &[])?.iter().find(|t| *t != expected) {
                return Err(cfg.error(format!(
                    "`{key}` contains {other}; only {expected} is supported"
                )));
            }
        }
        cfg.require("act_fn", &["silu".into()])?;
        let config = Self {
            in_channels: cfg.usize("in_channels", 3)?,
            out_channels: cfg.usize("out_channels", 3)?,
            latent_channels: cfg.usize("latent_channels", 4)?,
            block_out_channels: cfg.usizes("block_out_channels", &[64])?,
            layers_per_block: cfg.usize("layers_per_block", 1)?,
            norm_num_groups: cfg.usize("norm_num_groups", 32)?,
            scaling_factor: cfg.f64("scaling_factor", 0.18215)?,
            shift_factor: cfg.f64("shift_factor", 0.0)?,
            mid_block_add_attention: cfg.bool("mid_block_add_attention", true)?,
            use_quant_conv: cfg.bool("use_quant_conv", true)?,
            use_post_quant_conv: cfg.bool("use_post_quant_conv", true)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration for consistency.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: String| Err(LoadError::Config(format!("VAE: {why}")));
        if self.block_out_channels.is_empty() || self.block_out_channels.contains(&0) {
            return bad(format!(
                "block_out_channels {:?} must be non-empty and non-zero",
                self.block_out_channels
            ));
        }
        if let Err(why) = check_groups(&self.block_out_channels, self.norm_num_groups) {
            return bad(why);
        }
        if self.layers_per_block == 0
            || self.latent_channels == 0
            || self.in_channels == 0
            || self.out_channels == 0
        {
            return bad("layers_per_block and the channel counts must be non-zero".into());
        }
        if !self.shift_factor.is_finite() {
            return bad(format!("shift_factor {} must be finite", self.shift_factor));
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor > 0.0) {
            return bad(format!(
                "scaling_factor {} must be positive",
                self.scaling_factor
            ));
        }
        Ok(())
    }

    /// Spatial reduction from image to latent (2 per level after the first).
    pub fn downscale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// ResNet, optional attention, ResNet (`UNetMidBlock2D` of the VAE).
#[derive(Module, Debug)]
struct MidBlock<B: Backend> {
    first: ResnetBlock2D<B>,
    attention: Option<SpatialSelfAttention<B>>,
    second: ResnetBlock2D<B>,
}

impl<B: Backend> MidBlock<B> {
    fn load(vb: &Weights<B>, c: &VaeConfig) -> Result<Self, LoadError> {
        let (g, width) = (
            c.norm_num_groups,
            *c.block_out_channels.last().unwrap_or(&0),
        );
        Ok(Self {
            first: ResnetBlock2D::load(&vb.pp("resnets").pp(0), width, width, g, NORM_EPS)?,
            attention: if c.mid_block_add_attention {
                Some(SpatialSelfAttention::load(
                    &vb.pp("attentions").pp(0),
                    width,
                    g,
                    NORM_EPS,
                )?)
            } else {
                None
            },
            second: ResnetBlock2D::load(&vb.pp("resnets").pp(1), width, width, g, NORM_EPS)?,
        })
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.first.forward(x);
        let x = match &self.attention {
            Some(a) => a.forward(x),
            None => x,
        };
        self.second.forward(x)
    }
}

/// One resolution level: ResNet blocks then an optional 2× resampling convolution.
#[derive(Module, Debug)]
struct Level<B: Backend> {
    resnets: Vec<ResnetBlock2D<B>>,
    resample: Option<Conv2d<B>>,
}

/// Encoder: image → `2 · latent` moments.
#[derive(Module, Debug)]
struct Encoder<B: Backend> {
    conv_in: Conv2d<B>,
    down: Vec<Level<B>>,
    mid: MidBlock<B>,
    norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
}

impl<B: Backend> Encoder<B> {
    fn load(vb: &Weights<B>, c: &VaeConfig) -> Result<Self, LoadError> {
        let widths = &c.block_out_channels;
        let g = c.norm_num_groups;
        let down = widths
            .iter()
            .enumerate()
            .map(|(i, &width)| {
                let level = vb.pp("down_blocks").pp(i);
                let resnets = (0..c.layers_per_block)
                    .map(|j| {
                        let c_in = if j == 0 {
                            widths[i.saturating_sub(1)]
                        } else {
                            width
                        };
                        ResnetBlock2D::load(&level.pp("resnets").pp(j), c_in, width, g, NORM_EPS)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // diffusers pads right and bottom by one, then convolves with stride 2.
                let resample = if i + 1 < widths.len() {
                    Some(load_conv(
                        &level.pp("downsamplers").pp(0).pp("conv"),
                        [width, width],
                        3,
                        2,
                        [0, 0, 1, 1],
                    )?)
                } else {
                    None
                };
                Ok(Level { resnets, resample })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let top = widths[widths.len() - 1];
        Ok(Self {
            conv_in: load_conv3(&vb.pp("conv_in"), [c.in_channels, widths[0]])?,
            down,
            mid: MidBlock::load(&vb.pp("mid_block"), c)?,
            norm_out: load_group_norm(&vb.pp("conv_norm_out"), g, top, NORM_EPS)?,
            conv_out: load_conv3(&vb.pp("conv_out"), [top, 2 * c.latent_channels])?,
        })
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = conv_forward(&self.conv_in, x);
        for level in &self.down {
            x = level.resnets.iter().fold(x, |x, r| r.forward(x));
            if let Some(conv) = &level.resample {
                x = conv_forward(conv, x);
            }
        }
        let x = self.mid.forward(x);
        conv_forward(&self.conv_out, group_norm_silu(&self.norm_out, x))
    }
}

/// Decoder: latent → image.
#[derive(Module, Debug)]
struct Decoder<B: Backend> {
    conv_in: Conv2d<B>,
    mid: MidBlock<B>,
    up: Vec<Level<B>>,
    norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    fn load(vb: &Weights<B>, c: &VaeConfig) -> Result<Self, LoadError> {
        let reversed: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let g = c.norm_num_groups;
        let up = reversed
            .iter()
            .enumerate()
            .map(|(i, &width)| {
                let level = vb.pp("up_blocks").pp(i);
                let resnets = (0..=c.layers_per_block)
                    .map(|j| {
                        let c_in = if j == 0 {
                            reversed[i.saturating_sub(1)]
                        } else {
                            width
                        };
                        ResnetBlock2D::load(&level.pp("resnets").pp(j), c_in, width, g, NORM_EPS)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let resample = if i + 1 < reversed.len() {
                    Some(load_conv3(
                        &level.pp("upsamplers").pp(0).pp("conv"),
                        [width, width],
                    )?)
                } else {
                    None
                };
                Ok(Level { resnets, resample })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let bottom = reversed[reversed.len() - 1];
        Ok(Self {
            conv_in: load_conv3(&vb.pp("conv_in"), [c.latent_channels, reversed[0]])?,
            mid: MidBlock::load(&vb.pp("mid_block"), c)?,
            up,
            norm_out: load_group_norm(&vb.pp("conv_norm_out"), g, bottom, NORM_EPS)?,
            conv_out: load_conv3(&vb.pp("conv_out"), [bottom, c.out_channels])?,
        })
    }

    fn forward(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut x = self.mid.forward(conv_forward(&self.conv_in, z));
        for level in &self.up {
            x = level.resnets.iter().fold(x, |x, r| r.forward(x));
            if let Some(conv) = &level.resample {
                x = conv_forward(conv, upsample_nearest_2x(x));
            }
        }
        conv_forward(&self.conv_out, group_norm_silu(&self.norm_out, x))
    }
}

/// diffusers' `AutoencoderKL` (the SDXL VAE).
#[derive(Module, Debug)]
pub struct AutoencoderKl<B: Backend> {
    encoder: Encoder<B>,
    decoder: Decoder<B>,
    quant_conv: Option<Conv2d<B>>,
    post_quant_conv: Option<Conv2d<B>>,
    latent_channels: usize,
    scaling_factor: f64,
    shift_factor: f64,
    downscale: usize,
}

impl<B: Backend> AutoencoderKl<B> {
    /// Loads the VAE from `vb` (the root of a diffusers VAE safetensors file) with `config`.
    pub fn load(vb: &Weights<B>, config: VaeConfig) -> Result<Self, LoadError> {
        config.validate()?;
        let l = config.latent_channels;
        let one_by_one = |name: &str, c: usize| load_conv(&vb.pp(name), [c, c], 1, 1, [0; 4]);
        Ok(Self {
            encoder: Encoder::load(&vb.pp("encoder"), &config)?,
            decoder: Decoder::load(&vb.pp("decoder"), &config)?,
            quant_conv: if config.use_quant_conv {
                Some(one_by_one("quant_conv", 2 * l)?)
            } else {
                None
            },
            post_quant_conv: if config.use_post_quant_conv {
                Some(one_by_one("post_quant_conv", l)?)
            } else {
                None
            },
            latent_channels: l,
            scaling_factor: config.scaling_factor,
            shift_factor: config.shift_factor,
            downscale: config.downscale(),
        })
    }

    /// The latent scaling factor.
    pub fn scaling_factor(&self) -> f64 {
        self.scaling_factor
    }

    /// Latent channels (4 for SDXL, 16 for FLUX).
    pub fn latent_channels(&self) -> usize {
        self.latent_channels
    }

    /// Spatial reduction from image to latent (8 for SDXL).
    pub fn downscale(&self) -> usize {
        self.downscale
    }

    /// Encodes images `[batch, 3, H, W]` in `[-1, 1]` (H, W multiples of the downscale factor)
    /// to the mean of the latent distribution `[batch, latent, H/f, W/f]`, unscaled.
    pub fn encode(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>, InputError> {
        check_rgb_batch(&images, "VAE input")?;
        let [b, c, h, w] = images.dims();
        let f = self.downscale;
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            return Err(InputError::Shape {
                what: "VAE input".into(),
                expected: format!("[batch, 3, H, W] with H and W multiples of {f}"),
                found: vec![b, c, h, w],
            });
        }
        let moments = self.encoder.forward(images);
        let moments = match &self.quant_conv {
            Some(conv) => conv_forward(conv, moments),
            None => moments,
        };
        let [b, _, h, w] = moments.dims();
        Ok(moments.slice([0..b, 0..self.latent_channels, 0..h, 0..w]))
    }

    /// Decodes unscaled latents `[batch, latent, h, w]` to images `[batch, 3, h·f, w·f]`, about
    /// `[-1, 1]`.
    pub fn decode(&self, latents: Tensor<B, 4>) -> Result<Tensor<B, 4>, InputError> {
        let dims = latents.dims();
        if dims[1] != self.latent_channels || dims.contains(&0) {
            return Err(InputError::Shape {
                what: "VAE latents".into(),
                expected: format!("[batch, {}, h, w], non-empty", self.latent_channels),
                found: dims.to_vec(),
            });
        }
        let z = match &self.post_quant_conv {
            Some(conv) => conv_forward(conv, latents),
            None => latents,
        };
        Ok(self.decoder.forward(z))
    }

    /// Decodes latents as the sampler produces them (shifted by the shift factor, then multiplied
    /// by the scaling factor): `decode(latents / scaling + shift)`.
    pub fn decode_scaled(&self, latents: Tensor<B, 4>) -> Result<Tensor<B, 4>, InputError> {
        self.decode(self.unscale(latents))
    }

    /// Sampler latents back to the VAE's own scale: `latents / scaling + shift` (what
    /// [`decode_scaled`](Self::decode_scaled) decodes; pass it to
    /// [`decode_tiled`](Self::decode_tiled) for tiled decoding of sampler output).
    pub fn unscale(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        latents / self.scaling_factor + self.shift_factor
    }
}
