"""Builds the parity fixtures of faceclip-unet from diffusers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_unet_fixtures.py

Reference: diffusers 0.33.1 `AutoencoderKL` at a tiny SDXL-style configuration (two
DownEncoderBlock2D / UpDecoderBlock2D levels, mid-block attention, quant convs, scaling factor
0.13025). Every parameter is randomised (diffusers zero-initialises nothing here, but its default
init would hide scale bugs in the norms). The weights are saved with diffusers' key names.
"""

import json
import os

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "faceclip-unet", "tests", "fixtures")

torch.manual_seed(20261126)

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[16, 32],
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.13025,
)


def randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in module.state_dict(keep_vars=True).items():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.uniform_(-1.5 / fan_in**0.5, 1.5 / fan_in**0.5)
            elif "norm" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.1)


def main():
    os.makedirs(OUT, exist_ok=True)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    randomise(vae)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, os.path.join(OUT, "vae_weights.safetensors"))
    with open(os.path.join(OUT, "vae_config.json"), "w") as f:
        json.dump({"_class_name": "AutoencoderKL", **dict(vae.config)}, f, indent=1, default=list)

    image = torch.rand(2, 3, 32, 32) * 2 - 1
    latents = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        mean = vae.encode(image).latent_dist.mean
        decoded = vae.decode(latents).sample
    save_file(
        {"image": image, "encoded_mean": mean.contiguous(), "latents": latents, "decoded": decoded},
        os.path.join(OUT, "vae_io.safetensors"),
    )
    print("encoded", tuple(mean.shape), float(mean.std()), "decoded", tuple(decoded.shape), float(decoded.std()))


if __name__ == "__main__":
    main()
