"""Builds the scheduler parity fixtures of faceclip-core from diffusers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_scheduler_fixtures.py

Reference: diffusers' `EulerDiscreteScheduler`, `DDIMScheduler` and `DPMSolverMultistepScheduler`
(DPM++ 2M: dpmsolver++, order 2, midpoint) with the SDXL-base scheduler
configuration (scaled-linear betas 0.00085 -> 0.012, 1000 training steps, "leading" spacing,
steps_offset 1, epsilon prediction; DDIM with set_alpha_to_one and clip_sample off, as SDXL's
scheduler_config.json), plus the spacing and Karras variants. For every case the fixture holds the
timesteps, the sigmas (Euler), the initial noise scale, and a whole denoising loop driven by a
fixed stand-in model `eps(x, t) = 0.5 * cos(t / 300) * x + 0.3 * n` (n a fixed tensor), which the
Rust test evaluates identically: the scaled model input of the first step, the sample after the
first step and the final sample.
"""

import os

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "faceclip-core", "tests", "fixtures", "schedulers.safetensors")

SDXL = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    timestep_spacing="leading",
    prediction_type="epsilon",
    interpolation_type="linear",
    use_karras_sigmas=False,
)

CASES = [
    ("euler_leading_1", "euler", {}, 1),
    ("euler_leading_4", "euler", {}, 4),
    ("euler_leading_25", "euler", {}, 25),
    ("euler_leading_50", "euler", {}, 50),
    ("euler_trailing_10", "euler", {"timestep_spacing": "trailing"}, 10),
    ("euler_linspace_10", "euler", {"timestep_spacing": "linspace"}, 10),
    ("euler_karras_20", "euler", {"use_karras_sigmas": True}, 20),
    ("ddim_leading_1", "ddim", {}, 1),
    ("ddim_leading_10", "ddim", {}, 10),
    ("ddim_leading_50", "ddim", {}, 50),
    ("ddim_trailing_10", "ddim", {"timestep_spacing": "trailing"}, 10),
    ("dpm_leading_1", "dpm", {}, 1),
    ("dpm_leading_10", "dpm", {}, 10),
    ("dpm_leading_25", "dpm", {}, 25),
    ("dpm_trailing_20", "dpm", {"timestep_spacing": "trailing"}, 20),
    ("dpm_linspace_20", "dpm", {"timestep_spacing": "linspace"}, 20),
    ("dpm_karras_20", "dpm", {"use_karras_sigmas": True}, 20),
]


def make(kind, overrides):
    config = {**SDXL, **overrides}
    if kind == "euler":
        return EulerDiscreteScheduler(**config)
    if kind == "dpm":
        config.pop("interpolation_type")
        # DPM++ 2M: diffusers' defaults are algorithm "dpmsolver++", order 2, midpoint solver.
        return DPMSolverMultistepScheduler(**config)
    config.pop("interpolation_type")
    config.pop("use_karras_sigmas")
    return DDIMScheduler(**config, clip_sample=False, set_alpha_to_one=False)


def main():
    rng = np.random.default_rng(20261126)
    x0 = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    n = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    tensors = {"init": x0, "model_noise": n}
    for name, kind, overrides, steps in CASES:
        s = make(kind, overrides)
        s.set_timesteps(steps)
        tensors[f"{name}.timesteps"] = s.timesteps.numpy().astype(np.float64)
        tensors[f"{name}.init_noise_sigma"] = np.array([float(s.init_noise_sigma)], dtype=np.float64)
        if kind in ("euler", "dpm"):
            tensors[f"{name}.sigmas"] = s.sigmas.numpy().astype(np.float64)
        x = torch.from_numpy(x0) * s.init_noise_sigma
        for i, t in enumerate(s.timesteps):
            inp = s.scale_model_input(x, t)
            eps = 0.5 * torch.cos(t.float() / 300.0) * inp + 0.3 * torch.from_numpy(n)
            x = s.step(eps, t, x).prev_sample
            if i == 0:
                tensors[f"{name}.first_input"] = inp.numpy()
                tensors[f"{name}.first_step"] = x.numpy()
        tensors[f"{name}.final"] = x.numpy()
        print(name, s.timesteps[:4].tolist(), float(s.init_noise_sigma))
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
