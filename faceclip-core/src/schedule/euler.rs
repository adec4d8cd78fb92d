//! diffusers' `EulerDiscreteScheduler` (epsilon prediction, no churn): σ-space Euler steps.

use burn::tensor::{backend::Backend, Tensor};

use super::{check_index, NoiseSchedule, Scheduler, TimestepSpacing};
use crate::error::InputError;

/// Karras et al.'s ρ.
const KARRAS_RHO: f64 = 7.0;

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
        let train_sigmas = schedule
            .alphas_cumprod()
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect();
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

    /// σ at a fractional training timestep (linear interpolation, `np.interp`).
    fn sigma_at(&self, t: f64) -> f64 {
        let last = self.train_sigmas.len() - 1;
        let t = t.clamp(0.0, last as f64);
        let lo = (t.floor() as usize).min(last);
        let hi = (lo + 1).min(last);
        let w = t - lo as f64;
        self.train_sigmas[lo] as f64 * (1.0 - w) + self.train_sigmas[hi] as f64 * w
    }

    /// The fractional training timestep of σ (interpolating log σ, as diffusers' `_sigma_to_t`).
    fn t_of_sigma(&self, sigma: f64) -> f64 {
        let logs: Vec<f64> = self.train_sigmas.iter().map(|s| (*s as f64).ln()).collect();
        let log_sigma = sigma.max(1e-10).ln();
        let low = logs
            .iter()
            .filter(|&&l| log_sigma - l >= 0.0)
            .count()
            .saturating_sub(1)
            .min(logs.len() - 2);
        let (a, b) = (logs[low], logs[low + 1]);
        let w = ((a - log_sigma) / (a - b)).clamp(0.0, 1.0);
        (1.0 - w) * low as f64 + w * (low + 1) as f64
    }
}

impl Scheduler for EulerDiscrete {
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        self.schedule.check_steps(steps)?;
        let timesteps = self.schedule.timesteps(steps);
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| self.sigma_at(t)).collect();
        self.timesteps = if self.karras {
            let (max, min) = (sigmas[0], sigmas[sigmas.len() - 1]);
            let (max_inv, min_inv) = (max.powf(1.0 / KARRAS_RHO), min.powf(1.0 / KARRAS_RHO));
            sigmas = (0..steps)
                .map(|i| {
                    let ramp = if steps == 1 {
                        0.0
                    } else {
                        i as f64 / (steps - 1) as f64
                    };
                    (max_inv + ramp * (min_inv - max_inv)).powf(KARRAS_RHO)
                })
                .collect();
            sigmas
                .iter()
                .map(|&s| self.t_of_sigma(s) as f32 as f64)
                .collect()
        } else {
            timesteps
        };
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([0.0]).collect();
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        let max = self.sigmas.iter().copied().fold(0f32, f32::max);
        match self.schedule.spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max as f64,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt() as f64,
        }
    }

    fn scale_model_input<B: Backend>(
        &self,
        sample: Tensor<B, 4>,
        index: usize,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        let sigma = self.sigmas[index];
        Ok(sample / (sigma * sigma + 1.0).sqrt())
    }

    fn step<B: Backend>(
        &self,
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
