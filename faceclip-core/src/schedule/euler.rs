//! diffusers' `EulerDiscreteScheduler` (epsilon prediction, no churn): σ-space Euler steps.

use burn::tensor::{backend::Backend, Tensor};

use super::{
    check_index, karras_sigmas, sigma_at, t_of_sigma, train_sigmas, NoiseSchedule, Scheduler,
    TimestepSpacing,
};
use crate::error::InputError;

/// Euler discrete sampler (SDXL's default).
#[derive(Debug, Clone)]
pub struct EulerDiscrete {
    schedule: NoiseSchedule,
    karras: bool,
    /// `σ_t = √((1 − ᾱ_t)/ᾱ_t)` of every training step (f32 as diffusers).
    train_sigmas: Vec<f32>,
    timesteps: Vec<f64>,
    /// One σ per step plus the final 0.
    sigmas: Vec<f32>,
}

impl EulerDiscrete {
    /// A sampler over `schedule`; `karras` spaces the σ's as Karras et al. (ρ = 7).
    pub fn new(schedule: NoiseSchedule, karras: bool) -> Self {
        let train_sigmas = train_sigmas(&schedule.alphas_cumprod());
        Self {
            schedule,
            karras,
            train_sigmas,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
        }
    }

    /// The σ of each step followed by the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// Prepares `steps` inference steps (see [`Scheduler::set_timesteps`]).
    pub fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        self.schedule.check_steps(steps)?;
        let timesteps = self.schedule.timesteps(steps);
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| sigma_at(&self.train_sigmas, t))
            .collect();
        self.timesteps = if self.karras {
            // Between the σ's of the first and last spaced timesteps.
            sigmas = karras_sigmas(sigmas[0], sigmas[sigmas.len() - 1], steps);
            sigmas
                .iter()
                .map(|&s| t_of_sigma(&self.train_sigmas, s) as f32 as f64)
                .collect()
        } else {
            timesteps
        };
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([0.0]).collect();
        Ok(())
    }

    /// The model timestep of each step, descending.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }
}

impl<B: Backend> Scheduler<B> for EulerDiscrete {
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        EulerDiscrete::set_timesteps(self, steps)
    }

    fn timesteps(&self) -> &[f64] {
        EulerDiscrete::timesteps(self)
    }

    fn init_noise_sigma(&self) -> f64 {
        let max = self.sigmas.iter().copied().fold(0f32, f32::max);
        match self.schedule.spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max as f64,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt() as f64,
        }
    }

    fn scale_model_input(
        &self,
        sample: Tensor<B, 4>,
        index: usize,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        let sigma = self.sigmas[index];
        Ok(sample / (sigma * sigma + 1.0).sqrt())
    }

    fn step(
        &mut self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        let (sigma, next) = (self.sigmas[index], self.sigmas[index + 1]);
        let denoised = sample.clone() - eps * sigma;
        let derivative = (sample.clone() - denoised) / sigma;
        Ok(sample + derivative * (next - sigma))
    }
}
