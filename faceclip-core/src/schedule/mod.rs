//! Diffusion samplers (diffusers' schedulers) for the SDXL generator: the training noise schedule,
//! inference timesteps, input scaling and the update rule, behind one [`Scheduler`] trait.
//!
//! - [`EulerDiscrete`]: SDXL's default (`EulerDiscreteScheduler`), optionally with Karras sigmas.
//! - [`Ddim`]: deterministic DDIM (`DDIMScheduler`, η = 0).
//! - [`DpmSolverMultistep`]: DPM-Solver++ 2M (`DPMSolverMultistepScheduler`), optionally with
//!   Karras sigmas.
//!
//! All follow diffusers 0.33 number for number (checked against it in the tests), including its
//! float32 noise schedule. The update runs on any backend; the schedule is host arithmetic.

mod ddim;
mod dpm;
mod euler;
mod flow;

pub use ddim::Ddim;
pub use dpm::DpmSolverMultistep;
pub use euler::EulerDiscrete;
pub use flow::{FlowMatchEuler, FlowShift};

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::InputError;
use crate::rng::SplitMix64;

/// How inference timesteps are spread over the training range (diffusers' `timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// `k · (T / n) + offset`, descending (SD and SDXL).
    Leading,
    /// `T − k · T / n − 1`, rounded, descending (always includes `T − 1`).
    Trailing,
    /// `n` evenly spaced values from `T − 1` down to 0.
    Linspace,
}

/// The training noise schedule and the inference spacing shared by the schedulers.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    /// Training timesteps `T` (1000).
    pub train_steps: usize,
    /// First β of the scaled-linear schedule.
    pub beta_start: f64,
    /// Last β of the scaled-linear schedule.
    pub beta_end: f64,
    /// Inference timestep spacing.
    pub spacing: TimestepSpacing,
    /// Added to leading timesteps (1 for SD/SDXL).
    pub steps_offset: usize,
}

impl NoiseSchedule {
    /// SDXL base's `scheduler_config.json`: scaled-linear β 0.00085 → 0.012 over 1000 steps,
    /// leading spacing, steps offset 1.
    pub fn sdxl() -> Self {
        Self {
            train_steps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            spacing: TimestepSpacing::Leading,
            steps_offset: 1,
        }
    }

    /// `ᾱ_t` for every training step, computed in float32 as diffusers does
    /// (`linspace(√β₀, √β₁)²`, then a running product of `1 − β`).
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let n = self.train_steps;
        let (start, end) = (self.beta_start.sqrt() as f32, self.beta_end.sqrt() as f32);
        let step = if n > 1 {
            (end - start) / (n - 1) as f32
        } else {
            0.0
        };
        let mut product = 1f32;
        (0..n)
            .map(|i| {
                // torch.linspace fills the second half backwards from `end`.
                let root = if i < n / 2 {
                    start + step * i as f32
                } else {
                    end - step * (n - 1 - i) as f32
                };
                product *= 1.0 - root * root;
                product
            })
            .collect()
    }

    /// Checks `steps` against the schedule.
    fn check_steps(&self, steps: usize) -> Result<(), InputError> {
        if steps == 0 || steps > self.train_steps {
            return Err(InputError::OutOfRange {
                what: "inference steps (must be at least 1)".into(),
                value: steps as i64,
                limit: self.train_steps as i64 + 1,
            });
        }
        Ok(())
    }

    /// The timesteps of diffusers' multistep solvers, which space `steps + 1` points and drop
    /// the last (leading and linspace) before adding the offset.
    fn multistep_timesteps(&self, steps: usize) -> Vec<f64> {
        let t = self.train_steps;
        match self.spacing {
            TimestepSpacing::Leading => {
                let ratio = t / (steps + 1);
                (1..=steps)
                    .rev()
                    .map(|k| (k * ratio + self.steps_offset) as f64)
                    .collect()
            }
            TimestepSpacing::Linspace => {
                let last = (t - 1) as f64;
                (1..=steps)
                    .rev()
                    .map(|k| (last * k as f64 / steps as f64).round())
                    .collect()
            }
            TimestepSpacing::Trailing => self.timesteps(steps).iter().map(|v| v.round()).collect(),
        }
    }

    /// The descending inference timesteps for `steps` steps, as diffusers computes them.
    fn timesteps(&self, steps: usize) -> Vec<f64> {
        let t = self.train_steps;
        match self.spacing {
            TimestepSpacing::Leading => {
                let ratio = t / steps;
                (0..steps)
                    .rev()
                    .map(|k| (k * ratio + self.steps_offset) as f64)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                // np.arange(T, 0, -T/n): ceil(T / (T/n)) values.
                let ratio = t as f64 / steps as f64;
                let count = (t as f64 / ratio).ceil() as usize;
                (0..count)
                    .map(|k| (t as f64 - k as f64 * ratio).round() - 1.0)
                    .collect()
            }
            TimestepSpacing::Linspace => {
                let last = (t - 1) as f64;
                (0..steps)
                    .rev()
                    .map(|k| {
                        if steps == 1 {
                            0.0
                        } else {
                            (last * k as f64 / (steps - 1) as f64) as f32 as f64
                        }
                    })
                    .collect()
            }
        }
    }
}

/// A diffusion sampler: timesteps, input scaling and the update from one model prediction.
///
/// Generic over the backend so that multistep samplers can keep earlier predictions and so that
/// a pipeline can hold any of them as `Box<dyn Scheduler<B>>`.
pub trait Scheduler<B: Backend> {
    /// Prepares `steps` inference steps (at least 1, at most the training steps) and forgets any
    /// state of an earlier run.
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError>;

    /// The model timestep of each step, descending.
    fn timesteps(&self) -> &[f64];

    /// Standard deviation of the initial latent noise (1 unless the sampler works in σ space).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The model input at step `index` for the current `sample` (unchanged unless the sampler
    /// works in σ space).
    fn scale_model_input(
        &self,
        sample: Tensor<B, 4>,
        index: usize,
    ) -> Result<Tensor<B, 4>, InputError> {
        check_index(index, self.timesteps().len())?;
        Ok(sample)
    }

    /// The sample after step `index`, given the model's noise prediction `eps` for `sample`.
    fn step(
        &mut self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError>;
}

/// Karras et al.'s σ spacing (ρ = 7) from `max` down to `min` in `steps` values.
fn karras_sigmas(max: f64, min: f64, steps: usize) -> Vec<f64> {
    const RHO: f64 = 7.0;
    let (max_inv, min_inv) = (max.powf(1.0 / RHO), min.powf(1.0 / RHO));
    (0..steps)
        .map(|i| {
            let ramp = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            (max_inv + ramp * (min_inv - max_inv)).powf(RHO)
        })
        .collect()
}

/// `σ_t = √((1 − ᾱ_t)/ᾱ_t)` of every training step, in float32 as diffusers.
fn train_sigmas(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod
        .iter()
        .map(|&a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// σ at a fractional training timestep (linear interpolation, `np.interp`).
fn sigma_at(train_sigmas: &[f32], t: f64) -> f64 {
    let last = train_sigmas.len() - 1;
    let t = t.clamp(0.0, last as f64);
    let lo = (t.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let w = t - lo as f64;
    train_sigmas[lo] as f64 * (1.0 - w) + train_sigmas[hi] as f64 * w
}

/// The fractional training timestep of σ, interpolating log σ (diffusers' `_sigma_to_t`).
fn t_of_sigma(train_sigmas: &[f32], sigma: f64) -> f64 {
    let logs: Vec<f64> = train_sigmas.iter().map(|s| (*s as f64).ln()).collect();
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

/// Checks a step index against the prepared timesteps.
fn check_index(index: usize, steps: usize) -> Result<(), InputError> {
    if index >= steps {
        return Err(InputError::OutOfRange {
            what: "scheduler step index (call set_timesteps first)".into(),
            value: index as i64,
            limit: steps as i64,
        });
    }
    Ok(())
}

/// Standard-normal noise of `shape` from `seed`, drawn on the host (SplitMix64 + Box–Muller) so
/// the same seed gives the same latents on every backend. It does not reproduce PyTorch's
/// generator; to compare with a PyTorch run, pass the same latents to both.
pub fn gaussian_noise<B: Backend, const D: usize>(
    seed: u64,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    let mut rng = SplitMix64::new(seed);
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| rng.next_normal() as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
