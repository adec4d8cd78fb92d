//! diffusers' `FluxTransformer2DModel`: embeddings, double- and single-stream blocks, the
//! continuous AdaLN output head.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::{load_linear, Linear};
use faceclip_core::prepared::{ModelId, PreparedBy};
use faceclip_core::weights::Weights;
use faceclip_core::{InputError, LoadError};
use faceclip_unet::unet::{embedding_tensor, sinusoidal_embedding, TimestepMlp};

use crate::blocks::{modulate, DoubleStreamBlock, Modulation, SingleStreamBlock};
use crate::config::FluxConfig;
use crate::rope::rotary_tables;

/// Rotary position tables `(cos, sin)`, each `[tokens, head_dim]`.
pub type Rotary<B> = (Tensor<B, 2>, Tensor<B, 2>);

/// Width of the sinusoidal timestep and guidance embeddings.
const TIME_PROJ_DIM: usize = 256;
/// RoPE base.
const ROPE_THETA: f64 = 10_000.0;

/// The inputs of one FLUX transformer call.
#[derive(Debug, Clone)]
pub struct FluxInput<B: Backend> {
    /// Packed image tokens `[batch, image_tokens, in_channels]`.
    pub image: Tensor<B, 3>,
    /// Position ids of the image tokens (see [`image_ids`](crate::image_ids)).
    pub image_ids: Vec<[f64; 3]>,
    /// Text context `[batch, text_tokens, joint_attention_dim]` (T5 states).
    pub context: Tensor<B, 3>,
    /// Pooled text vector `[batch, pooled_projection_dim]` (CLIP-L).
    pub pooled: Tensor<B, 2>,
    /// The timestep as FluxPipeline passes it: σ in `[0, 1]` (scheduler timestep / 1000).
    pub timestep: f32,
    /// The distilled guidance scale (models with `guidance_embeds`; FLUX.1-dev uses 3.5, the
    /// FaceT5 script 1.0).
    pub guidance: Option<f32>,
}

/// A FLUX text conditioning prepared once for every step that uses it: the embedded text
/// tokens, the pooled vector's (and the distilled guidance's) share of the conditioning vector,
/// and the rotary tables of the text and image tokens. None of them depends on the latents or
/// the timestep, so a sampler prepares them once per generation
/// ([`FluxTransformer2DModel::prepare`]) instead of at every step, as
/// [`FluxTransformer2DModel::forward`] does.
#[derive(Debug, Clone)]
pub struct PreparedFluxContext<B: Backend> {
    by: PreparedBy<B::Device>,
    /// `context_embedder(context)` `[batch, text_tokens, inner_dim]`.
    text: Tensor<B, 3>,
    /// `text_embedder(pooled)` plus `guidance_embedder(guidance)` `[batch, inner_dim]`.
    conditioning: Tensor<B, 2>,
    /// Rotary tables of the text tokens followed by the image tokens.
    rotary: Rotary<B>,
    image_tokens: usize,
}

impl<B: Backend> PreparedFluxContext<B> {
    /// The batch size it was prepared for.
    pub fn batch(&self) -> usize {
        self.text.dims()[0]
    }

    /// The number of image tokens (image ids) it was prepared for.
    pub fn image_tokens(&self) -> usize {
        self.image_tokens
    }
}

/// FLUX's diffusion transformer: predicts the flow velocity of packed image tokens.
#[derive(Module, Debug)]
pub struct FluxTransformer2DModel<B: Backend> {
    timestep_embedder: TimestepMlp<B>,
    guidance_embedder: Option<TimestepMlp<B>>,
    text_embedder: TimestepMlp<B>,
    context_embedder: Linear<B>,
    x_embedder: Linear<B>,
    double_blocks: Vec<DoubleStreamBlock<B>>,
    single_blocks: Vec<SingleStreamBlock<B>>,
    norm_out: Modulation<B>,
    proj_out: Linear<B>,
    #[module(skip)]
    config: FluxConfig,
    #[module(skip)]
    id: ModelId,
}

impl<B: Backend> FluxTransformer2DModel<B> {
    /// Loads the model from `vb` (the root of a diffusers transformer state dict: diffusers
    /// safetensors or FaceCLIP's `dit.pt`).
    pub fn load(vb: &Weights<B>, config: FluxConfig) -> Result<Self, LoadError> {
        config.validate()?;
        let c = &config;
        let dim = c.inner_dim();
        let heads = c.num_attention_heads;
        let embed = vb.pp("time_text_embed");
        Ok(Self {
            timestep_embedder: TimestepMlp::load(
                &embed.pp("timestep_embedder"),
                TIME_PROJ_DIM,
                dim,
            )?,
            guidance_embedder: c
                .guidance_embeds
                .then(|| TimestepMlp::load(&embed.pp("guidance_embedder"), TIME_PROJ_DIM, dim))
                .transpose()?,
            text_embedder: TimestepMlp::load(
                &embed.pp("text_embedder"),
                c.pooled_projection_dim,
                dim,
            )?,
            context_embedder: load_linear(
                &vb.pp("context_embedder"),
                c.joint_attention_dim,
                dim,
                true,
            )?,
            x_embedder: load_linear(&vb.pp("x_embedder"), c.in_channels, dim, true)?,
            double_blocks: (0..c.num_layers)
                .map(|i| DoubleStreamBlock::load(&vb.pp("transformer_blocks").pp(i), dim, heads))
                .collect::<Result<_, _>>()?,
            single_blocks: (0..c.num_single_layers)
                .map(|i| {
                    SingleStreamBlock::load(&vb.pp("single_transformer_blocks").pp(i), dim, heads)
                })
                .collect::<Result<_, _>>()?,
            norm_out: Modulation::load(vb, ["norm_out"], dim, 2)?,
            proj_out: load_linear(&vb.pp("proj_out"), dim, c.out_channels, true)?,
            config,
            id: ModelId::unique(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FluxConfig {
        &self.config
    }

    /// This model's identity: distinct per [`load`](Self::load), shared by its clones. A
    /// [`PreparedFluxContext`] is used only by the model that prepared it, on the device it
    /// was prepared on.
    pub fn id(&self) -> ModelId {
        self.id
    }

    /// The rotary tables `(cos, sin)` `[text_tokens + image_tokens, head_dim]` for
    /// `text_tokens` text tokens (id (0, 0, 0)) followed by the image tokens of `image_ids`.
    fn rotary(&self, text_tokens: usize, image_ids: &[[f64; 3]], device: &B::Device) -> Rotary<B> {
        let ids: Vec<[f64; 3]> = std::iter::repeat_n([0.0; 3], text_tokens)
            .chain(image_ids.iter().copied())
            .collect();
        rotary_tables::<B>(&ids, self.config.axes_dims_rope, ROPE_THETA, device)
    }

    /// Predicts the velocity `[batch, image_tokens, out_channels]`. Equals
    /// [`prepare`](Self::prepare) then [`forward_prepared`](Self::forward_prepared).
    pub fn forward(&self, input: FluxInput<B>) -> Result<Tensor<B, 3>, InputError> {
        let batch = input.context.dims()[0];
        self.check_conditioning(
            &input.context,
            &input.pooled,
            input.guidance,
            &input.image_ids,
        )?;
        self.check_image(&input.image, [batch, input.image_ids.len()], input.timestep)?;
        let prepared = self.prepare_checked(
            input.context,
            input.pooled,
            input.guidance,
            &input.image_ids,
        );
        Ok(self.forward_checked(input.image, input.timestep, &prepared))
    }

    /// Prepares the text `context [batch, text_tokens, joint_attention_dim]`, the `pooled`
    /// vector `[batch, pooled_projection_dim]`, the distilled `guidance` (models with
    /// `guidance_embeds`, else `None`) and the positions of the image tokens (`image_ids`) for
    /// [`forward_prepared`](Self::forward_prepared), as [`FluxInput`] names them.
    pub fn prepare(
        &self,
        context: Tensor<B, 3>,
        pooled: Tensor<B, 2>,
        guidance: Option<f32>,
        image_ids: &[[f64; 3]],
    ) -> Result<PreparedFluxContext<B>, InputError> {
        self.check_conditioning(&context, &pooled, guidance, image_ids)?;
        Ok(self.prepare_checked(context, pooled, guidance, image_ids))
    }

    /// [`forward`](Self::forward) of packed image tokens `[batch, image_tokens, in_channels]`
    /// at `timestep` (σ in `[0, 1]`), with a context this model [prepared](Self::prepare) for
    /// this batch size and these image tokens, on the image's device.
    pub fn forward_prepared(
        &self,
        image: Tensor<B, 3>,
        timestep: f32,
        prepared: &PreparedFluxContext<B>,
    ) -> Result<Tensor<B, 3>, InputError> {
        prepared
            .by
            .check("FLUX prepared context", self.id, &image.device())?;
        self.check_image(&image, [prepared.batch(), prepared.image_tokens], timestep)?;
        Ok(self.forward_checked(image, timestep, prepared))
    }

    /// `σ · 1000` (the transformer scales the σ it gets) or a guidance scale as the sinusoidal
    /// input of its MLP, one row per sample.
    fn embed_scalar(value: f32, batch: usize, device: &B::Device) -> Tensor<B, 2> {
        let e = sinusoidal_embedding(&[value * 1000.0], TIME_PROJ_DIM, true, 0.0);
        embedding_tensor::<B>(e, TIME_PROJ_DIM, device).repeat_dim(0, batch)
    }

    /// [`prepare`](Self::prepare) for inputs already checked.
    fn prepare_checked(
        &self,
        context: Tensor<B, 3>,
        pooled: Tensor<B, 2>,
        guidance: Option<f32>,
        image_ids: &[[f64; 3]],
    ) -> PreparedFluxContext<B> {
        let device = context.device();
        let [batch, text_tokens, _] = context.dims();
        let mut conditioning = self.text_embedder.forward(pooled);
        if let (Some(mlp), Some(g)) = (&self.guidance_embedder, guidance) {
            conditioning = mlp.forward(Self::embed_scalar(g, batch, &device)) + conditioning;
        }
        PreparedFluxContext {
            text: self.context_embedder.forward(context),
            conditioning,
            rotary: self.rotary(text_tokens, image_ids, &device),
            image_tokens: image_ids.len(),
            by: PreparedBy::new(self.id, device),
        }
    }

    /// The forward pass for inputs already checked.
    fn forward_checked(
        &self,
        image: Tensor<B, 3>,
        timestep: f32,
        prepared: &PreparedFluxContext<B>,
    ) -> Tensor<B, 3> {
        let [batch, image_tokens, _] = image.dims();
        let text_tokens = prepared.text.dims()[1];
        let device = image.device();
        let temb = self
            .timestep_embedder
            .forward(Self::embed_scalar(timestep, batch, &device));
        // Every modulation reads `silu(temb)`: compute it once.
        let silu_temb = silu(temb + prepared.conditioning.clone());
        let rope = &prepared.rotary;

        let mut image = self.x_embedder.forward(image);
        let mut text = prepared.text.clone();
        for block in &self.double_blocks {
            (image, text) = block.forward(image, text, &silu_temb, rope);
        }
        let mut joint = Tensor::cat(vec![text, image], 1);
        for block in &self.single_blocks {
            joint = block.forward(joint, &silu_temb, rope);
        }
        let dim = self.config.inner_dim();
        let image = joint.slice([0..batch, text_tokens..text_tokens + image_tokens, 0..dim]);
        // AdaLayerNormContinuous: scale first, then shift.
        let m = self.norm_out.forward(&silu_temb);
        let image = modulate(image, &m[1], &m[0]);
        self.proj_out.forward(image)
    }

    /// Checks the image tokens `[batch, tokens, in_channels]` (one per image id) and the
    /// timestep.
    fn check_image(
        &self,
        image: &Tensor<B, 3>,
        [batch, tokens]: [usize; 2],
        timestep: f32,
    ) -> Result<(), InputError> {
        let channels = self.config.in_channels;
        if image.dims() != [batch, tokens, channels] {
            return Err(InputError::Shape {
                what: "FLUX image tokens (one per image id, the context's batch)".into(),
                expected: format!("[{batch}, {tokens}, {channels}]"),
                found: image.dims().to_vec(),
            });
        }
        InputError::check_finite("FLUX timestep", timestep)
    }

    /// Checks the text context, pooled vector, distilled guidance and image ids.
    fn check_conditioning(
        &self,
        context: &Tensor<B, 3>,
        pooled: &Tensor<B, 2>,
        guidance: Option<f32>,
        image_ids: &[[f64; 3]],
    ) -> Result<(), InputError> {
        let c = &self.config;
        let [batch, text, width] = context.dims();
        if batch == 0 || text == 0 || width != c.joint_attention_dim {
            return Err(InputError::Shape {
                what: "FLUX text context (encoder_hidden_states)".into(),
                expected: format!("[batch, tokens, {}], non-empty", c.joint_attention_dim),
                found: context.dims().to_vec(),
            });
        }
        if pooled.dims() != [batch, c.pooled_projection_dim] {
            return Err(InputError::Shape {
                what: "FLUX pooled projection".into(),
                expected: format!("[{batch}, {}]", c.pooled_projection_dim),
                found: pooled.dims().to_vec(),
            });
        }
        if guidance.is_some() != c.guidance_embeds || !guidance.is_none_or(f32::is_finite) {
            return Err(InputError::Value {
                what: "FLUX distilled guidance".into(),
                reason: format!(
                    "{guidance:?}: a finite scale is {} for this model",
                    if c.guidance_embeds {
                        "required"
                    } else {
                        "not accepted"
                    }
                ),
            });
        }
        if image_ids.is_empty() {
            return Err(InputError::Value {
                what: "FLUX image ids".into(),
                reason: "at least one image token is needed".into(),
            });
        }
        Ok(())
    }
}
