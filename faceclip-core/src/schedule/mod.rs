//! Diffusion samplers (diffusers' schedulers) for the SDXL generator: the training noise schedule,
//! inference timesteps, input scaling and the update rule, behind one [`Scheduler`] trait.
//!
//! - [`EulerDiscrete`]: SDXL's default (`EulerDiscreteScheduler`), optionally with Karras sigmas.
//! - [`Ddim`]: deterministic DDIM (`DDIMScheduler`, η = 0).
//!
//! Both follow diffusers 0.33 number for number (checked against it in the tests), including its
//! float32 noise schedule. The update runs on any backend; the schedule is host arithmetic.

mod ddim;
mod euler;

pub use ddim::Ddim;
pub use euler::EulerDiscrete;

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
pub trait Scheduler {
    /// Prepares `steps` inference steps (at least 1, at most the training steps).
    fn set_timesteps(&mut self, steps: usize) -> Result<(), InputError>;

    /// The model timestep of each step, descending.
    fn timesteps(&self) -> &[f64];

    /// Standard deviation of the initial latent noise.
    fn init_noise_sigma(&self) -> f64;

    /// The model input at step `index` for the current `sample`.
    fn scale_model_input<B: Backend>(
        &self,
        sample: Tensor<B, 4>,
        index: usize,
    ) -> Result<Tensor<B, 4>, InputError>;

    /// The sample after step `index`, given the model's noise prediction `eps` for `sample`.
    fn step<B: Backend>(
        &self,
        eps: Tensor<B, 4>,
        index: usize,
        sample: Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>, InputError>;
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
