//! diffusers' `UNet2DConditionModel`: time (and SDXL text_time) embedding, down levels with
//! skip connections, the cross-attention mid block, up levels and the output head.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::GroupNorm;
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::{conv_forward, group_norm_silu};
use faceclip_core::prepared::{ModelId, PreparedBy};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};

use super::config::{LevelKind, UNetConfig};
use super::embedding::{embedding_tensor, sinusoidal_embedding, TimestepMlp};
use super::transformer::{KeysValues, Transformer2D, TransformerSpec};
use crate::blocks::{load_conv, load_conv3, load_group_norm, upsample_nearest_2x, ResnetBlock2D};

/// SDXL's added conditioning for one batch: the pooled text embedding and the six
/// `[orig_h, orig_w, crop_top, crop_left, target_h, target_w]` numbers per sample.
#[derive(Debug, Clone)]
pub struct TextTimeCondition<B: Backend> {
    /// Pooled text embeddings `[batch, pooled_dim]` (1280 for SDXL).
    pub text_embeds: Tensor<B, 2>,
    /// One `[orig_h, orig_w, crop_top, crop_left, target_h, target_w]` per sample.
    pub time_ids: Vec<[f32; 6]>,
}

/// A text context and SDXL's added conditioning prepared once for every denoising step that
/// uses them: each cross-attention's keys and values of the context, and the added embedding
/// of the pooled text and size numbers. Neither depends on the sample or the timestep, so a
/// sampler prepares them once per image ([`UNet2DConditionModel::prepare`]) instead of
/// recomputing them at every step, as [`UNet2DConditionModel::forward`] does.
#[derive(Debug, Clone)]
pub struct PreparedContext<B: Backend> {
    /// The model that prepared it and the device its tensors live on.
    by: PreparedBy<B::Device>,
    batch: usize,
    /// Per `Transformer2DModel`, in the order the forward pass meets them, per block.
    keys_values: Vec<Vec<KeysValues<B>>>,
    /// `add_embedding(text_embeds, time_ids)` `[batch, time_embed_dim]` (SDXL).
    added: Option<Tensor<B, 2>>,
}

impl<B: Backend> PreparedContext<B> {
    /// The batch size it was prepared for.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// One ResNet block, optionally followed by a transformer.
#[derive(Module, Debug)]
struct Layer<B: Backend> {
    resnet: ResnetBlock2D<B>,
    attention: Option<Transformer2D<B>>,
}

impl<B: Backend> Layer<B> {
    /// Takes its transformer's keys and values from `keys_values` (the next entry).
    fn forward<'a>(
        &self,
        x: Tensor<B, 4>,
        time: &Tensor<B, 2>,
        keys_values: &mut impl Iterator<Item = &'a Vec<KeysValues<B>>>,
    ) -> Tensor<B, 4> {
        let x = self.resnet.forward_with_time(x, Some(time));
        match &self.attention {
            Some(attention) => attention.forward(x, next_keys_values(keys_values)),
            None => x,
        }
    }
}

/// The next transformer's entry of a [`PreparedContext`] made by the same model, which holds
/// one per transformer.
fn next_keys_values<'a, B: Backend>(
    keys_values: &mut impl Iterator<Item = &'a Vec<KeysValues<B>>>,
) -> &'a [KeysValues<B>] {
    keys_values
        .next()
        .expect("one entry per transformer (prepared by this model)")
}

/// A down level: layers, then a stride-2 convolution except at the lowest level.
#[derive(Module, Debug)]
struct DownLevel<B: Backend> {
    layers: Vec<Layer<B>>,
    downsample: Option<Conv2d<B>>,
}

/// An up level: layers that each take one skip connection, then nearest 2× + convolution
/// except at the highest level.
#[derive(Module, Debug)]
struct UpLevel<B: Backend> {
    layers: Vec<Layer<B>>,
    upsample: Option<Conv2d<B>>,
}

/// `UNetMidBlock2DCrossAttn`: ResNet, transformer, ResNet.
#[derive(Module, Debug)]
struct MidBlock<B: Backend> {
    first: ResnetBlock2D<B>,
    attention: Transformer2D<B>,
    second: ResnetBlock2D<B>,
}

/// diffusers' `UNet2DConditionModel` (the SDXL generator): predicts the noise in a latent given
/// the timestep, the text context and, for SDXL, the pooled embedding and size numbers.
#[derive(Module, Debug)]
pub struct UNet2DConditionModel<B: Backend> {
    time_embedding: TimestepMlp<B>,
    add_embedding: Option<TimestepMlp<B>>,
    conv_in: Conv2d<B>,
    down: Vec<DownLevel<B>>,
    mid: MidBlock<B>,
    up: Vec<UpLevel<B>>,
    conv_norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
    #[module(skip)]
    config: UNetConfig,
    #[module(skip)]
    id: ModelId,
}

impl<B: Backend> UNet2DConditionModel<B> {
    /// Loads the model from `vb` (the root of a diffusers UNet state dict: diffusers safetensors
    /// or FaceCLIP's `unet.pt`) with `config`.
    pub fn load(vb: &Weights<B>, config: UNetConfig) -> Result<Self, LoadError> {
        config.validate()?;
        let c = &config;
        let channels = &c.block_out_channels;
        let levels = channels.len();
        let (groups, eps, temb) = (c.norm_num_groups, c.norm_eps, c.time_embedding_dim);
        let resnet = |vb: &Weights<B>, c_in: usize, c_out: usize| {
            ResnetBlock2D::load_with_time(vb, [c_in, c_out], Some(temb), groups, eps)
        };
        let transformer = |vb: &Weights<B>, level: usize, layers: usize| {
            Transformer2D::load(
                vb,
                &TransformerSpec {
                    channels: channels[level],
                    heads: c.attention_heads[level],
                    layers,
                    context_dim: c.cross_attention_dim,
                    groups,
                    linear_projection: c.use_linear_projection,
                },
            )
        };
        // One ResNet block of `level`, followed by a transformer on cross-attention levels.
        let layer = |vb: &Weights<B>, kind: LevelKind, level: usize, j: usize, width_in: usize| {
            Ok::<_, LoadError>(Layer {
                resnet: resnet(&vb.pp("resnets").pp(j), width_in, channels[level])?,
                attention: match kind {
                    LevelKind::CrossAttention => Some(transformer(
                        &vb.pp("attentions").pp(j),
                        level,
                        c.transformer_layers_per_block[level],
                    )?),
                    LevelKind::Plain => None,
                },
            })
        };

        let mut down = Vec::with_capacity(levels);
        let mut skip_channels = vec![channels[0]];
        for (i, kind) in c.down_levels.iter().enumerate() {
            let vb = vb.pp("down_blocks").pp(i);
            let c_in = if i == 0 { channels[0] } else { channels[i - 1] };
            let mut layers = Vec::with_capacity(c.layers_per_block);
            for j in 0..c.layers_per_block {
                let width_in = if j == 0 { c_in } else { channels[i] };
                layers.push(layer(&vb, *kind, i, j, width_in)?);
                skip_channels.push(channels[i]);
            }
            let downsample = if i + 1 < levels {
                skip_channels.push(channels[i]);
                let conv = vb.pp("downsamplers.0.conv");
                Some(load_conv(&conv, [channels[i], channels[i]], 3, 2, [1; 4])?)
            } else {
                None
            };
            down.push(DownLevel { layers, downsample });
        }

        let last = levels - 1;
        let mid_vb = vb.pp("mid_block");
        let mid = MidBlock {
            first: resnet(&mid_vb.pp("resnets.0"), channels[last], channels[last])?,
            attention: transformer(
                &mid_vb.pp("attentions.0"),
                last,
                c.transformer_layers_per_block[last],
            )?,
            second: resnet(&mid_vb.pp("resnets.1"), channels[last], channels[last])?,
        };

        let mut up = Vec::with_capacity(levels);
        let mut previous = channels[last];
        for (i, kind) in c.up_levels.iter().enumerate() {
            let level = last - i;
            let vb = vb.pp("up_blocks").pp(i);
            let mut layers = Vec::with_capacity(c.layers_per_block + 1);
            for j in 0..=c.layers_per_block {
                let skip = skip_channels.pop().ok_or_else(|| {
                    LoadError::Config("UNet: more up layers than skip connections".into())
                })?;
                let width_in = if j == 0 { previous } else { channels[level] };
                layers.push(layer(&vb, *kind, level, j, width_in + skip)?);
            }
            let upsample = if i < last {
                Some(load_conv3(
                    &vb.pp("upsamplers.0.conv"),
                    [channels[level], channels[level]],
                )?)
            } else {
                None
            };
            previous = channels[level];
            up.push(UpLevel { layers, upsample });
        }

        Ok(Self {
            time_embedding: TimestepMlp::load(&vb.pp("time_embedding"), channels[0], temb)?,
            add_embedding: c
                .text_time
                .map(|tt| TimestepMlp::load(&vb.pp("add_embedding"), tt.projection_input_dim, temb))
                .transpose()?,
            conv_in: load_conv3(&vb.pp("conv_in"), [c.in_channels, channels[0]])?,
            down,
            mid,
            up,
            conv_norm_out: load_group_norm(&vb.pp("conv_norm_out"), groups, channels[0], eps)?,
            conv_out: load_conv3(&vb.pp("conv_out"), [channels[0], c.out_channels])?,
            config,
            id: ModelId::unique(),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// This model's identity: distinct per [`load`](Self::load), shared by its clones and by
    /// the model moved to another device. A [`PreparedContext`] is used only by the model that
    /// prepared it, on the device it was prepared on.
    pub fn id(&self) -> ModelId {
        self.id
    }

    /// Predicts the noise in `sample [batch, in_channels, h, w]` at `timestep` (the same for
    /// every sample), attending to `context [batch, tokens, cross_attention_dim]`. Models with
    /// text_time conditioning (SDXL) need `added`; others must get `None`. Equals
    /// [`prepare`](Self::prepare) then [`forward_prepared`](Self::forward_prepared).
    pub fn forward(
        &self,
        sample: Tensor<B, 4>,
        timestep: f32,
        context: Tensor<B, 3>,
        added: Option<&TextTimeCondition<B>>,
    ) -> Result<Tensor<B, 4>, InputError> {
        self.check_sample(&sample, timestep)?;
        self.check_conditioning(&context, added, sample.dims()[0])?;
        let prepared = self.prepare_checked(context, added);
        Ok(self.forward_checked(sample, timestep, &prepared))
    }

    /// Prepares `context [batch, tokens, cross_attention_dim]` and, for text_time models,
    /// `added` (else `None`) for [`forward_prepared`](Self::forward_prepared): every
    /// cross-attention's keys and values and the added embedding, computed once.
    pub fn prepare(
        &self,
        context: Tensor<B, 3>,
        added: Option<&TextTimeCondition<B>>,
    ) -> Result<PreparedContext<B>, InputError> {
        self.check_conditioning(&context, added, context.dims()[0])?;
        Ok(self.prepare_checked(context, added))
    }

    /// [`forward`](Self::forward) with a context this model [prepared](Self::prepare), for
    /// samples of its batch size on the device it was prepared on (a model moved to another
    /// device prepares its context again).
    pub fn forward_prepared(
        &self,
        sample: Tensor<B, 4>,
        timestep: f32,
        prepared: &PreparedContext<B>,
    ) -> Result<Tensor<B, 4>, InputError> {
        self.check_sample(&sample, timestep)?;
        prepared
            .by
            .check("UNet prepared context", self.id, &sample.device())?;
        let batch = sample.dims()[0];
        if batch != prepared.batch {
            return Err(InputError::Shape {
                what: "UNet sample (for a prepared context)".into(),
                expected: format!("[{}, {}, h, w]", prepared.batch, self.config.in_channels),
                found: sample.dims().to_vec(),
            });
        }
        Ok(self.forward_checked(sample, timestep, prepared))
    }

    /// The transformers in the order the forward pass meets them: down levels, mid, up levels.
    fn transformers(&self) -> impl Iterator<Item = &Transformer2D<B>> {
        let down = self.down.iter().flat_map(|level| &level.layers);
        let up = self.up.iter().flat_map(|level| &level.layers);
        down.filter_map(|layer| layer.attention.as_ref())
            .chain(std::iter::once(&self.mid.attention))
            .chain(up.filter_map(|layer| layer.attention.as_ref()))
    }

    /// [`prepare`](Self::prepare) for inputs already checked.
    fn prepare_checked(
        &self,
        context: Tensor<B, 3>,
        added: Option<&TextTimeCondition<B>>,
    ) -> PreparedContext<B> {
        let c = &self.config;
        let device = context.device();
        let added = match (&self.add_embedding, c.text_time, added) {
            (Some(mlp), Some(tt), Some(added)) => {
                let ids: Vec<f32> = added.time_ids.iter().flatten().copied().collect();
                let dim = 6 * tt.time_embed_dim;
                let ids =
                    sinusoidal_embedding(&ids, tt.time_embed_dim, c.flip_sin_to_cos, c.freq_shift);
                let ids = embedding_tensor::<B>(ids, dim, &device);
                Some(mlp.forward(Tensor::cat(vec![added.text_embeds.clone(), ids], 1)))
            }
            _ => None,
        };
        PreparedContext {
            by: PreparedBy::new(self.id, device.clone()),
            batch: context.dims()[0],
            keys_values: self
                .transformers()
                .map(|transformer| transformer.keys_values(&context))
                .collect(),
            added,
        }
    }

    /// The forward pass for inputs already checked.
    fn forward_checked(
        &self,
        sample: Tensor<B, 4>,
        timestep: f32,
        prepared: &PreparedContext<B>,
    ) -> Tensor<B, 4> {
        let device = sample.device();
        let c = &self.config;
        let batch = sample.dims()[0];

        let width = c.block_out_channels[0];
        let t = sinusoidal_embedding(&[timestep], width, c.flip_sin_to_cos, c.freq_shift);
        let mut emb = self
            .time_embedding
            .forward(embedding_tensor::<B>(t, width, &device).repeat_dim(0, batch));
        if let Some(added) = &prepared.added {
            emb = emb + added.clone();
        }
        // Every ResNet block applies `silu` to the embedding before its projection: do it once.
        let time = silu(emb);
        let mut keys_values = prepared.keys_values.iter();

        let mut x = conv_forward(&self.conv_in, sample);
        let mut skips = vec![x.clone()];
        for level in &self.down {
            for layer in &level.layers {
                x = layer.forward(x, &time, &mut keys_values);
                skips.push(x.clone());
            }
            if let Some(conv) = &level.downsample {
                x = conv_forward(conv, x);
                skips.push(x.clone());
            }
        }

        x = self.mid.first.forward_with_time(x, Some(&time));
        x = self
            .mid
            .attention
            .forward(x, next_keys_values(&mut keys_values));
        x = self.mid.second.forward_with_time(x, Some(&time));

        for level in &self.up {
            for layer in &level.layers {
                let skip = skips
                    .pop()
                    .expect("one skip per up layer (checked at load)");
                x = layer.forward(Tensor::cat(vec![x, skip], 1), &time, &mut keys_values);
            }
            if let Some(conv) = &level.upsample {
                let target = skips.last().map(|s| [s.dims()[2], s.dims()[3]]);
                x = conv_forward(conv, upsample_to(x, target));
            }
        }

        let x = group_norm_silu(&self.conv_norm_out, x);
        conv_forward(&self.conv_out, x)
    }

    /// Checks the sample's shape and the timestep.
    fn check_sample(&self, sample: &Tensor<B, 4>, timestep: f32) -> Result<(), InputError> {
        let c = &self.config;
        let [batch, channels, h, w] = sample.dims();
        if channels != c.in_channels || batch == 0 || h == 0 || w == 0 {
            return Err(InputError::Shape {
                what: "UNet sample".into(),
                expected: format!("[batch, {}, h, w], non-empty", c.in_channels),
                found: sample.dims().to_vec(),
            });
        }
        InputError::check_finite("UNet timestep", timestep)
    }

    /// Checks the text context and added conditioning for `batch` samples.
    fn check_conditioning(
        &self,
        context: &Tensor<B, 3>,
        added: Option<&TextTimeCondition<B>>,
        batch: usize,
    ) -> Result<(), InputError> {
        let c = &self.config;
        let [cb, tokens, width] = context.dims();
        if cb != batch || width != c.cross_attention_dim || tokens == 0 {
            return Err(InputError::Shape {
                what: "UNet text context (encoder_hidden_states)".into(),
                expected: format!("[{batch}, tokens, {}]", c.cross_attention_dim),
                found: context.dims().to_vec(),
            });
        }
        match (c.text_time, added) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(InputError::Value {
                what: "UNet added conditioning".into(),
                reason: "this model has no text_time conditioning; pass None".into(),
            }),
            (Some(_), None) => Err(InputError::Value {
                what: "UNet added conditioning".into(),
                reason: "this model needs text_embeds and time_ids (SDXL text_time)".into(),
            }),
            (Some(tt), Some(added)) => {
                if added.text_embeds.dims() != [batch, tt.pooled_dim()] {
                    return Err(InputError::Shape {
                        what: "UNet text_embeds (pooled)".into(),
                        expected: format!("[{batch}, {}]", tt.pooled_dim()),
                        found: added.text_embeds.dims().to_vec(),
                    });
                }
                if added.time_ids.len() != batch
                    || added.time_ids.iter().flatten().any(|v| !v.is_finite())
                {
                    return Err(InputError::Value {
                        what: "UNet time_ids".into(),
                        reason: format!(
                            "expected {batch} rows of 6 finite numbers, got {} rows",
                            added.time_ids.len()
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}

/// Nearest-neighbour upsampling to the skip connection's size: exactly 2× when it matches (the
/// usual case), otherwise to `target` as PyTorch's `interpolate(size=…, mode="nearest")`.
fn upsample_to<B: Backend>(x: Tensor<B, 4>, target: Option<[usize; 2]>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    match target {
        Some(size) if size != [2 * h, 2 * w] => {
            interpolate(x, size, InterpolateOptions::new(InterpolateMode::Nearest))
        }
        _ => upsample_nearest_2x(x),
    }
}
