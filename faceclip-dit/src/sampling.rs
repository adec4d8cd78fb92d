//! The FLUX denoising loop as diffusers' `FluxPipeline` runs it for FaceT5-FLUX: flow-matching
//! Euler steps on packed latents, distilled guidance embedded in the model, and "true"
//! classifier-free guidance with a second pass on the negative prompt.

use std::ops::ControlFlow;

use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::schedule::{FlowMatchEuler, Scheduler};
use faceclip_core::InputError;
use faceclip_unet::{check_guidance, DenoiseError, StepProgress};

use crate::FluxTransformer2DModel;

/// The text conditioning of one FLUX generation.
#[derive(Debug, Clone)]
pub struct FluxConditioning<B: Backend> {
    /// Prompt context `[images, tokens, joint_attention_dim]` (T5 / FaceT5 states).
    pub positive: Tensor<B, 3>,
    /// Pooled prompt vector `[images, pooled_projection_dim]` (CLIP-L).
    pub positive_pooled: Tensor<B, 2>,
    /// Negative context and pooled vector, used when `true_cfg > 1`.
    pub negative: Option<(Tensor<B, 3>, Tensor<B, 2>)>,
}

/// Settings of [`denoise_flux`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FluxGuidance {
    /// True classifier-free guidance scale (FaceT5 script: 3.5); ≤ 1 runs the positive pass only.
    pub true_cfg: f64,
    /// Distilled guidance fed to models with `guidance_embeds` (FaceT5 script: 1.0).
    pub distilled: f32,
}

/// Runs `steps` flow-matching steps from packed noise `[images, tokens, in_channels]` of a
/// `[latent_h, latent_w]` latent and returns the final packed latents. The scheduler's σ grid and
/// shift follow FluxPipeline for this token count.
pub fn denoise_flux<B: Backend>(
    model: &FluxTransformer2DModel<B>,
    noise: Tensor<B, 3>,
    [latent_h, latent_w]: [usize; 2],
    conditioning: &FluxConditioning<B>,
    steps: usize,
    guidance: FluxGuidance,
    on_step: &mut dyn FnMut(StepProgress) -> ControlFlow<()>,
) -> Result<Tensor<B, 3>, DenoiseError> {
    check_guidance("FLUX true CFG scale", guidance.true_cfg)?;
    InputError::check_finite("FLUX distilled guidance", guidance.distilled)?;
    let [images, tokens, channels] = noise.dims();
    let ids = crate::image_ids(latent_h, latent_w);
    if ids.len() != tokens {
        return Err(InputError::Shape {
            what: "packed FLUX noise".into(),
            expected: format!(
                "[images, {}, channels] for a {latent_h}×{latent_w} latent",
                ids.len()
            ),
            found: vec![images, tokens, channels],
        }
        .into());
    }
    let negative = match (&conditioning.negative, guidance.true_cfg > 1.0) {
        (Some(negative), true) => Some(negative),
        (None, true) => {
            return Err(InputError::Value {
                what: "FLUX true CFG".into(),
                reason: "a scale above 1 needs negative embeddings".into(),
            }
            .into())
        }
        (_, false) => None,
    };
    let distilled = model.config().guidance_embeds.then_some(guidance.distilled);
    let mut scheduler = FlowMatchEuler::flux(tokens);
    scheduler.set_timesteps(steps)?;
    let timesteps = scheduler.timesteps().to_vec();
    // The scheduler works on 4-D tensors; packed latents travel as [images, 1, tokens, channels].
    let mut latents = noise.unsqueeze_dim::<4>(1);
    // The embedded text, pooled and guidance conditioning and the rotary tables depend on
    // neither the latents nor the timestep: prepared once per generation, not per step.
    let prepare = |context: &Tensor<B, 3>, pooled: &Tensor<B, 2>| {
        model.prepare(context.clone(), pooled.clone(), distilled, &ids)
    };
    let positive = prepare(&conditioning.positive, &conditioning.positive_pooled)?;
    let negative = negative
        .map(|(context, pooled)| prepare(context, pooled))
        .transpose()?;
    for (index, &t) in timesteps.iter().enumerate() {
        let call = |prepared| {
            model.forward_prepared(latents.clone().squeeze_dim(1), t as f32 / 1000.0, prepared)
        };
        let mut velocity = call(&positive)?;
        if let Some(negative) = &negative {
            let negative = call(negative)?;
            velocity = negative.clone() + (velocity - negative) * guidance.true_cfg;
        }
        latents = Scheduler::<B>::step(&mut scheduler, velocity.unsqueeze_dim(1), index, latents)?;
        if on_step(StepProgress {
            step: index + 1,
            steps,
            timestep: t,
        })
        .is_break()
        {
            return Err(DenoiseError::Cancelled {
                step: index + 1,
                steps,
            });
        }
    }
    Ok(latents.squeeze_dim(1))
}
