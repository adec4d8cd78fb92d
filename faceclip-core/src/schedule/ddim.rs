//! diffusers' `DDIMScheduler` with η = 0 (deterministic), epsilon prediction, no clipping.

use burn::tensor::{backend::Backend, Tensor};

use super::{check_index, NoiseSchedule, Scheduler};
use crate::error::InputError;

/// Deterministic DDIM sampler.
#[derive(Debug, Clone)]
pub struct Ddim {
    schedule: NoiseSchedule,
    alphas_cumprod: Vec<f32>,
    /// `ᾱ` used after the last step: 1 with `set_alpha_to_one`, else `ᾱ_0` (SDXL).
    final_alpha: f32,
    timesteps: Vec<f64>,
    stride: usize,
}

impl Ddim {
    /// A sampler over `schedule`; `set_alpha_to_one` as diffusers' flag (SDXL: false).
    pub fn new(schedule: NoiseSchedule, set_alpha_to_one: bool) -> Self {
        let alphas_cumprod = schedule.alphas_cumprod();
        let final_alpha = if set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Self {
            schedule,
            alphas_cumprod,
            final_alpha,
            timesteps: Vec::new(),
            stride: 1,
        }
    }

    fn alpha(&self, t: i64) -> f32 {
        if t >= 0 {
            self.alphas_cumprod[(t as usize).min(self.alphas_cumprod.len() - 1)]
        } else {
            self.final_alpha
        }
    }
}

impl Ddim {
    /// Prepares `steps` inference steps (see [`Scheduler::set_timesteps`]).
    pub fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        self.schedule.check_steps(steps)?;
        self.timesteps = self
            .schedule
            .timesteps(steps)
            .iter()
            .map(|t| t.round())
            .collect();
        self.stride = self.schedule.train_steps / steps;
        Ok(())
    }

    /// The model timestep of each step, descending.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }
}

impl<B: Backend> Scheduler<B> for Ddim {
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        Ddim::set_timesteps(self, steps)
    }

    fn timesteps(&self) -> &[f64] {
        Ddim::timesteps(self)
    }

    fn step(
        &mut self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        let t = self.timesteps[index] as i64;
        let (a, a_prev) = (self.alpha(t), self.alpha(t - self.stride as i64));
        let denoised = (sample - eps.clone() * (1.0 - a).sqrt()) / a.sqrt();
        Ok(denoised * a_prev.sqrt() + eps * (1.0 - a_prev).sqrt())
    }
}
