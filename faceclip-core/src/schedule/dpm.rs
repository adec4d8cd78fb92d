//! diffusers' `DPMSolverMultistepScheduler` as "DPM++ 2M": `dpmsolver++`, second order, midpoint
//! solver, epsilon prediction, final σ = 0 (the last step is first order), deterministic.

use burn::tensor::{backend::Backend, Tensor};

use super::{
    check_index, karras_sigmas, sigma_at, t_of_sigma, train_sigmas, NoiseSchedule, Scheduler,
};
use crate::error::InputError;

/// DPM-Solver++ (2M) sampler; it keeps the previous step's denoised prediction, so steps must
/// run in order after [`Scheduler::set_timesteps`].
#[derive(Debug, Clone)]
pub struct DpmSolverMultistep<B: Backend> {
    schedule: NoiseSchedule,
    karras: bool,
    train_sigmas: Vec<f32>,
    timesteps: Vec<f64>,
    /// One σ per step plus the final 0.
    sigmas: Vec<f32>,
    /// The denoised prediction of the previous step.
    previous: Option<Tensor<B, 4>>,
    /// The step `step` expects next.
    next_index: usize,
}

impl<B: Backend> DpmSolverMultistep<B> {
    /// A sampler over `schedule`; `karras` spaces the σ's as Karras et al. (ρ = 7) over the
    /// whole training range.
    pub fn new(schedule: NoiseSchedule, karras: bool) -> Self {
        let train_sigmas = train_sigmas(&schedule.alphas_cumprod());
        Self {
            schedule,
            karras,
            train_sigmas,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            previous: None,
            next_index: 0,
        }
    }

    /// The model timestep of each step, descending.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// The σ of each step followed by the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// `(α, σ)` of the variance-preserving form, and `λ = log α − log σ`.
    fn alpha_sigma_lambda(sigma: f32) -> (f64, f64, f64) {
        let sigma = sigma as f64;
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        let s = sigma * alpha;
        (alpha, s, alpha.ln() - s.ln())
    }
}

impl<B: Backend> Scheduler<B> for DpmSolverMultistep<B> {
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError> {
        self.schedule.check_steps(steps)?;
        let sigmas: Vec<f64>;
        (self.timesteps, sigmas) = if self.karras {
            let all = &self.train_sigmas;
            let sigmas = karras_sigmas(all[all.len() - 1] as f64, all[0] as f64, steps);
            let timesteps = sigmas.iter().map(|&s| t_of_sigma(all, s).round()).collect();
            (timesteps, sigmas)
        } else {
            let timesteps = self.schedule.multistep_timesteps(steps);
            let sigmas = timesteps
                .iter()
                .map(|&t| sigma_at(&self.train_sigmas, t))
                .collect();
            (timesteps, sigmas)
        };
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([0.0]).collect();
        self.previous = None;
        self.next_index = 0;
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        DpmSolverMultistep::timesteps(self)
    }

    fn step(
        &mut self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps.len())?;
        if index != self.next_index {
            return Err(InputError::OutOfRange {
                what: format!(
                    "DPM++ 2M step index (steps run in order; expected {})",
                    self.next_index
                ),
                value: index as i64,
                limit: self.next_index as i64 + 1,
            });
        }
        let (alpha_s, sigma_s, lambda_s) = Self::alpha_sigma_lambda(self.sigmas[index]);
        let (alpha_t, sigma_t, lambda_t) = Self::alpha_sigma_lambda(self.sigmas[index + 1]);
        let denoised = (sample.clone() - eps * sigma_s as f32) / alpha_s as f32;
        let h = lambda_t - lambda_s;
        let decay = (sigma_t / sigma_s) as f32;
        let gain = (alpha_t * ((-h).exp() - 1.0)) as f32;
        let last = index + 1 == self.timesteps.len();
        let x = match (&self.previous, last) {
            (Some(previous), false) => {
                // Second order (midpoint): D1 = (m0 − m1) / r0 with r0 = h0 / h.
                let (_, _, lambda_prev) = Self::alpha_sigma_lambda(self.sigmas[index - 1]);
                let r0 = (lambda_s - lambda_prev) / h;
                let d1 = (denoised.clone() - previous.clone()) / r0 as f32;
                sample * decay - denoised.clone() * gain - d1 * (0.5 * gain)
            }
            // First order at the start and at the final (σ = 0) step.
            _ => sample * decay - denoised.clone() * gain,
        };
        self.previous = Some(denoised);
        self.next_index += 1;
        Ok(x)
    }
}
