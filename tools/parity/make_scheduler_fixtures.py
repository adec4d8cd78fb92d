"""Builds the scheduler parity fixtures of faceclip-core from diffusers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_scheduler_fixtures.py

Reference: diffusers' `EulerDiscreteScheduler`, `DDIMScheduler`, `DPMSolverMultistepScheduler`
(DPM++ 2M: dpmsolver++, order 2, midpoint) and `FlowMatchEulerDiscreteScheduler` (FLUX.1-dev's
config, driven as FluxPipeline does) with the SDXL-base scheduler
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
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
)
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
    # Flow matching as FluxPipeline drives FLUX.1-dev's scheduler: sigmas linspace(1, 1/n, n) and
    # mu from the packed image token count (3888 = 1152x864, 256, 4096), and a fixed shift.
    ("flow_3888_50", "flow", {"seq": 3888}, 50),
    ("flow_256_4", "flow", {"seq": 256}, 4),
    ("flow_4096_1", "flow", {"seq": 4096}, 1),
    ("flow_fixed3_10", "flow", {"use_dynamic_shifting": False}, 10),
]

FLUX_SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def flux_mu(seq):
    """FluxPipeline's calculate_shift."""
    c = FLUX_SCHEDULER
    m = (c["max_shift"] - c["base_shift"]) / (c["max_image_seq_len"] - c["base_image_seq_len"])
    return seq * m + c["base_shift"] - m * c["base_image_seq_len"]


def make(kind, overrides):
    if kind == "flow":
        config = {**FLUX_SCHEDULER, **{k: v for k, v in overrides.items() if k != "seq"}}
        return FlowMatchEulerDiscreteScheduler(**config)
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
        if kind == "flow":
            mu = flux_mu(overrides["seq"]) if s.config.use_dynamic_shifting else None
            s.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        else:
            s.set_timesteps(steps)
        tensors[f"{name}.timesteps"] = s.timesteps.numpy().astype(np.float64)
        sigma0 = getattr(s, "init_noise_sigma", 1.0)
        tensors[f"{name}.init_noise_sigma"] = np.array([float(sigma0)], dtype=np.float64)
        if kind in ("euler", "dpm", "flow"):
            tensors[f"{name}.sigmas"] = s.sigmas.numpy().astype(np.float64)
        x = torch.from_numpy(x0) * sigma0
        for i, t in enumerate(s.timesteps):
            inp = x if kind == "flow" else s.scale_model_input(x, t)
            eps = 0.5 * torch.cos(t.float() / 300.0) * inp + 0.3 * torch.from_numpy(n)
            x = s.step(eps, t, x).prev_sample
            if i == 0:
                tensors[f"{name}.first_input"] = inp.numpy()
                tensors[f"{name}.first_step"] = x.numpy()
        tensors[f"{name}.final"] = x.numpy()
        print(name, s.timesteps[:4].tolist(), float(sigma0))
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
