//! diffusers' `FluxTransformer2DModel`: embeddings, double- and single-stream blocks, the
//! continuous AdaLN output head.

use burn::module::Module;
use burn::tensor::activation::silu;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::{load_linear, Linear};
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
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FluxConfig {
        &self.config
    }

    /// The rotary tables `(cos, sin)` `[text_tokens + image_tokens, head_dim]` for
    /// `text_tokens` text tokens (id (0, 0, 0)) followed by the image tokens of `image_ids`.
    /// They depend only on the sizes: compute them once per generation and pass them to
    /// [`forward_with_rotary`](Self::forward_with_rotary).
    pub fn rotary(
        &self,
        text_tokens: usize,
        image_ids: &[[f64; 3]],
        device: &B::Device,
    ) -> Rotary<B> {
        let ids: Vec<[f64; 3]> = std::iter::repeat_n([0.0; 3], text_tokens)
            .chain(image_ids.iter().copied())
            .collect();
        rotary_tables::<B>(&ids, self.config.axes_dims_rope, ROPE_THETA, device)
    }

    /// Predicts the velocity `[batch, image_tokens, out_channels]`.
    pub fn forward(&self, input: FluxInput<B>) -> Result<Tensor<B, 3>, InputError> {
        let rotary = self.rotary(
            input.context.dims()[1],
            &input.image_ids,
            &input.image.device(),
        );
        self.forward_with_rotary(input, &rotary)
    }

    /// [`forward`](Self::forward) with rotary tables from [`rotary`](Self::rotary) for the
    /// same token counts and image ids.
    pub fn forward_with_rotary(
        &self,
        input: FluxInput<B>,
        rope: &Rotary<B>,
    ) -> Result<Tensor<B, 3>, InputError> {
        self.check(&input)?;
        let c = &self.config;
        let device = input.image.device();
        let [batch, image_tokens, _] = input.image.dims();
        let text_tokens = input.context.dims()[1];

        // The transformer multiplies the σ it gets by 1000 before embedding it.
        let embed = |value: f32| {
            let e = sinusoidal_embedding(&[value * 1000.0], TIME_PROJ_DIM, true, 0.0);
            embedding_tensor::<B>(e, TIME_PROJ_DIM, &device).repeat_dim(0, batch)
        };
        let mut temb = self.timestep_embedder.forward(embed(input.timestep));
        if let (Some(mlp), Some(g)) = (&self.guidance_embedder, input.guidance) {
            temb = temb + mlp.forward(embed(g));
        }
        let temb = temb + self.text_embedder.forward(input.pooled);
        // Every modulation reads `silu(temb)`: compute it once.
        let silu_temb = silu(temb);

        let mut image = self.x_embedder.forward(input.image);
        let mut text = self.context_embedder.forward(input.context);
        let tokens = text_tokens + image_tokens;
        if rope.0.dims() != [tokens, c.attention_head_dim] {
            return Err(InputError::Shape {
                what: "FLUX rotary tables".into(),
                expected: format!("[{tokens}, {}]", c.attention_head_dim),
                found: rope.0.dims().to_vec(),
            });
        }

        for block in &self.double_blocks {
            (image, text) = block.forward(image, text, &silu_temb, rope);
        }
        let mut joint = Tensor::cat(vec![text, image], 1);
        for block in &self.single_blocks {
            joint = block.forward(joint, &silu_temb, rope);
        }
        let dim = c.inner_dim();
        let image = joint.slice([0..batch, text_tokens..text_tokens + image_tokens, 0..dim]);
        // AdaLayerNormContinuous: scale first, then shift.
        let m = self.norm_out.forward(&silu_temb);
        let image = modulate(image, &m[1], &m[0]);
        Ok(self.proj_out.forward(image))
    }

    fn check(&self, input: &FluxInput<B>) -> Result<(), InputError> {
        let c = &self.config;
        let [batch, tokens, channels] = input.image.dims();
        if batch == 0 || tokens == 0 || channels != c.in_channels || input.image_ids.len() != tokens
        {
            return Err(InputError::Shape {
                what: "FLUX image tokens (with one id each)".into(),
                expected: format!("[batch, tokens, {}] and `tokens` ids", c.in_channels),
                found: vec![batch, tokens, channels, input.image_ids.len()],
            });
        }
        let [cb, text, width] = input.context.dims();
        if cb != batch || text == 0 || width != c.joint_attention_dim {
            return Err(InputError::Shape {
                what: "FLUX text context (encoder_hidden_states)".into(),
                expected: format!("[{batch}, tokens, {}]", c.joint_attention_dim),
                found: input.context.dims().to_vec(),
            });
        }
        if input.pooled.dims() != [batch, c.pooled_projection_dim] {
            return Err(InputError::Shape {
                what: "FLUX pooled projection".into(),
                expected: format!("[{batch}, {}]", c.pooled_projection_dim),
                found: input.pooled.dims().to_vec(),
            });
        }
        let finite = input.timestep.is_finite() && input.guidance.is_none_or(f32::is_finite);
        if !finite || input.guidance.is_some() != c.guidance_embeds {
            return Err(InputError::Value {
                what: "FLUX timestep / guidance".into(),
                reason: format!(
                    "timestep {} and guidance {:?} must be finite; guidance is {} for this model",
                    input.timestep,
                    input.guidance,
                    if c.guidance_embeds {
                        "required"
                    } else {
                        "not accepted"
                    }
                ),
            });
        }
        Ok(())
    }
}
