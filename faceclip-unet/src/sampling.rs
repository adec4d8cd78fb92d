//! The SDXL denoising loop as diffusers' `StableDiffusionXLPipeline` runs it: initial-noise
//! scaling, classifier-free guidance with the batch order `[negative, positive]`, the scheduler's
//! input scaling and step, a progress callback that can cancel.

use std::ops::ControlFlow;

use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::schedule::Scheduler;
use faceclip_core::InputError;

use crate::unet::{TextTimeCondition, UNet2DConditionModel};

/// The text conditioning of one generation: per-image context and pooled embeddings for the
/// prompt and (with guidance) the negative prompt.
#[derive(Debug, Clone)]
pub struct Conditioning<B: Backend> {
    /// Prompt context `[images, tokens, cross_attention_dim]`.
    pub positive: Tensor<B, 3>,
    /// Pooled prompt embedding `[images, pooled_dim]`.
    pub positive_pooled: Tensor<B, 2>,
    /// Negative-prompt context, same shape as `positive`.
    pub negative: Tensor<B, 3>,
    /// Pooled negative embedding, same shape as `positive_pooled`.
    pub negative_pooled: Tensor<B, 2>,
    /// `[orig_h, orig_w, crop_top, crop_left, target_h, target_w]` for every image (the same
    /// for the negative).
    pub time_ids: [f32; 6],
}

/// What the progress callback learns after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// Steps finished (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// The model timestep of the finished step.
    pub timestep: f64,
}

/// Why the loop stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum DenoiseError {
    /// Bad input (shapes, step count, guidance scale).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The progress callback asked to stop after `step` of `steps` steps.
    #[error("generation cancelled after step {step} of {steps}")]
    Cancelled {
        /// Steps finished before the cancellation.
        step: usize,
        /// Total steps requested.
        steps: usize,
    },
}

/// Accepts a guidance scale that is a finite number ≥ 0 (`what` names it in the error).
pub fn check_guidance(what: &str, scale: f64) -> Result<(), InputError> {
    if scale.is_finite() && scale >= 0.0 {
        Ok(())
    } else {
        Err(InputError::Value {
            what: what.into(),
            reason: format!("{scale} must be a finite number ≥ 0"),
        })
    }
}

/// Runs `steps` denoising steps from `noise` (standard normal latents `[images, c, h, w]`; the
/// scheduler's initial σ is applied here, as diffusers does) and returns the final latents.
///
/// With `guidance > 1` each step runs the UNet on `[negative, positive]` and combines
/// `ε = ε_neg + guidance · (ε_pos − ε_neg)`; otherwise only the positive half runs (diffusers'
/// rule). `on_step` is called after every step; returning [`ControlFlow::Break`] cancels.
pub fn denoise<B: Backend>(
    unet: &UNet2DConditionModel<B>,
    scheduler: &mut dyn Scheduler<B>,
    noise: Tensor<B, 4>,
    conditioning: &Conditioning<B>,
    steps: usize,
    guidance: f64,
    on_step: &mut dyn FnMut(StepProgress) -> ControlFlow<()>,
) -> Result<Tensor<B, 4>, DenoiseError> {
    check_guidance("guidance scale", guidance)?;
    let images = noise.dims()[0];
    check_conditioning(conditioning, images)?;
    scheduler.set_timesteps(steps)?;
    let guided = guidance > 1.0;
    let (context, pooled) = if guided {
        (
            Tensor::cat(
                vec![conditioning.negative.clone(), conditioning.positive.clone()],
                0,
            ),
            Tensor::cat(
                vec![
                    conditioning.negative_pooled.clone(),
                    conditioning.positive_pooled.clone(),
                ],
                0,
            ),
        )
    } else {
        (
            conditioning.positive.clone(),
            conditioning.positive_pooled.clone(),
        )
    };
    let added = unet.config().text_time.map(|_| TextTimeCondition {
        text_embeds: pooled,
        time_ids: vec![conditioning.time_ids; context.dims()[0]],
    });
    // The context's keys and values and the added embedding are the same at every step.
    let prepared = unet.prepare(context, added.as_ref())?;

    let timesteps = scheduler.timesteps().to_vec();
    let mut latents = noise * scheduler.init_noise_sigma();
    for (index, &timestep) in timesteps.iter().enumerate() {
        let input = if guided {
            Tensor::cat(vec![latents.clone(), latents.clone()], 0)
        } else {
            latents.clone()
        };
        let input = scheduler.scale_model_input(input, index)?;
        let eps = unet.forward_prepared(input, timestep as f32, &prepared)?;
        let eps = if guided {
            let [b, c, h, w] = eps.dims();
            let negative = eps.clone().slice([0..b / 2, 0..c, 0..h, 0..w]);
            let positive = eps.slice([b / 2..b, 0..c, 0..h, 0..w]);
            negative.clone() + (positive - negative) * guidance
        } else {
            eps
        };
        latents = scheduler.step(eps, index, latents)?;
        let progress = StepProgress {
            step: index + 1,
            steps,
            timestep,
        };
        if on_step(progress).is_break() {
            return Err(DenoiseError::Cancelled {
                step: index + 1,
                steps,
            });
        }
    }
    Ok(latents)
}

fn check_conditioning<B: Backend>(c: &Conditioning<B>, images: usize) -> Result<(), InputError> {
    let [b, tokens, width] = c.positive.dims();
    if b != images || c.negative.dims() != [b, tokens, width] {
        return Err(InputError::Shape {
            what: "prompt / negative prompt embeddings".into(),
            expected: format!("both [{images}, tokens, width]"),
            found: [c.positive.dims(), c.negative.dims()].concat(),
        });
    }
    let [pb, pooled] = c.positive_pooled.dims();
    if pb != images || c.negative_pooled.dims() != [pb, pooled] {
        return Err(InputError::Shape {
            what: "pooled prompt / negative prompt embeddings".into(),
            expected: format!("both [{images}, pooled_dim]"),
            found: [c.positive_pooled.dims(), c.negative_pooled.dims()].concat(),
        });
    }
    if c.time_ids.iter().any(|v| !v.is_finite()) {
        return Err(InputError::Value {
            what: "time_ids".into(),
            reason: format!("{:?} must be finite", c.time_ids),
        });
    }
    Ok(())
}
