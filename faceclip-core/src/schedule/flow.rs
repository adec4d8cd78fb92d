//! diffusers' `FlowMatchEulerDiscreteScheduler` as FLUX.1-dev configures and `FluxPipeline`
//! drives it: σ's from 1 to 1/n, the exponential time shift with μ from the image's token count
//! (dynamic shifting) or a fixed shift, Euler steps on the velocity `x ← x + (σ_next − σ)·v`.

use burn::tensor::{backend::Backend, Tensor};

use super::{check_index, Scheduler};
use crate::error::InputError;

/// How σ's are shifted towards the noisy end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowShift {
    /// `σ' = s·σ / (1 + (s − 1)·σ)` with a fixed `s` (diffusers' `shift`).
    Fixed(f64),
    /// FLUX's resolution-dependent shift: `σ' = e^μ / (e^μ + 1/σ − 1)`, with μ interpolated
    /// linearly from `base_shift` at `base_seq_len` tokens to `max_shift` at `max_seq_len`.
    Dynamic {
        /// μ at `base_seq_len` (0.5 for FLUX.1-dev).
        base_shift: f64,
        /// μ at `max_seq_len` (1.15).
        max_shift: f64,
        /// 256 for FLUX.1-dev.
        base_seq_len: usize,
        /// 4096 for FLUX.1-dev.
        max_seq_len: usize,
    },
}

/// Flow-matching Euler sampler (FLUX's).
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    train_steps: usize,
    shift: FlowShift,
    image_seq_len: usize,
    timesteps: Vec<f64>,
    /// One σ per step plus the final 0 (f32 as diffusers).
    sigmas: Vec<f32>,
}

impl FlowMatchEuler {
    /// FLUX.1-dev's scheduler config (dynamic shifting, μ from 0.5 at 256 tokens to 1.15 at
    /// 4096) for an image of `image_seq_len` packed latent tokens (`(H/16)·(W/16)`: 3888 at
    /// 1152×864).
    pub fn flux(image_seq_len: usize) -> Self {
        Self::new(
            FlowShift::Dynamic {
                base_shift: 0.5,
                max_shift: 1.15,
                base_seq_len: 256,
                max_seq_len: 4096,
            },
            image_seq_len,
        )
    }

    /// A sampler with `shift` (1000 training steps) for `image_seq_len` tokens (used by the
    /// dynamic shift only).
    pub fn new(shift: FlowShift, image_seq_len: usize) -> Self {
        Self {
            train_steps: 1000,
            shift,
            image_seq_len,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
        }
    }

    /// μ of the dynamic shift for this image size (`None` with a fixed shift); FluxPipeline's
    /// `calculate_shift`.
    pub fn mu(&self) -> Option<f64> {
        match self.shift {
            FlowShift::Fixed(_) => None,
            FlowShift::Dynamic {
                base_shift,
                max_shift,
                base_seq_len,
                max_seq_len,
            } => {
                let m = (max_shift - base_shift) / (max_seq_len as f64 - base_seq_len as f64);
                let b = base_shift - m * base_seq_len as f64;
                Some(self.image_seq_len as f64 * m + b)
            }
        }
    }

    /// Prepares `steps` steps from FluxPipeline's σ grid `linspace(1, 1/steps, steps)`.
    pub fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        if steps == 0 || steps > self.train_steps {
            return Err(InputError::OutOfRange {
                what: "inference steps (must be at least 1)".into(),
                value: steps as i64,
                limit: self.train_steps as i64 + 1,
            });
        }
        // numpy's linspace in f64.
        let last = 1.0 / steps as f64;
        let grid = (0..steps).map(|i| {
            if steps == 1 {
                1.0
            } else if i == steps - 1 {
                last
            } else {
                i as f64 * ((last - 1.0) / (steps - 1) as f64) + 1.0
            }
        });
        // The shift runs on the float32 grid in float32, as numpy does with diffusers' arrays.
        let grid = grid.map(|sigma| sigma as f32);
        let shifted: Vec<f32> = match self.shift {
            FlowShift::Fixed(s) => {
                let s = s as f32;
                grid.map(|sigma| s * sigma / (1.0 + (s - 1.0) * sigma))
                    .collect()
            }
            FlowShift::Dynamic { .. } => {
                let e_mu = self.mu().unwrap_or(0.0).exp() as f32;
                grid.map(|sigma| e_mu / (e_mu + (1.0 / sigma - 1.0)))
                    .collect()
            }
        };
        self.timesteps = shifted
            .iter()
            .map(|&s| (s * self.train_steps as f32) as f64)
            .collect();
        self.sigmas = shifted.into_iter().chain([0.0]).collect();
        Ok(())
    }

    /// The model timestep of each step (σ·1000), descending. FLUX's transformer takes σ, that
    /// is this value / 1000.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// The σ of each step followed by the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

impl<B: Backend> Scheduler<B> for FlowMatchEuler {
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        FlowMatchEuler::set_timesteps(self, steps)
    }

    fn timesteps(&self) -> &[f64] {
        FlowMatchEuler::timesteps(self)
    }

    /// `sample + (σ_next − σ)·v`, where the model predicts the velocity `v` (named `eps` by the
    /// trait).
    fn step(
        &mut self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        let dt = self.sigmas[index + 1] - self.sigmas[index];
        Ok(sample + eps * dt)
    }
}
