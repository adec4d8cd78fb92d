"""Builds the parity fixture of faceclip-core's fused group norm (`nn::group_norm`,
`nn::group_norm_silu`, and the CubeCL kernels behind them on wgpu and CUDA).

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_kernel_fixtures.py

Reference: `torch.nn.GroupNorm` (affine, fp32) and `torch.nn.functional.silu`. The cases cover
what the kernels treat separately: groups longer than one statistics chunk (8192 elements) with
an uneven last chunk, a batch of two, a rank-3 input, SDXL's 32 groups, and inputs whose mean is
large against their spread (where summing raw squares in fp32 would lose the variance).
For each case `<name>.x`, `<name>.weight`, `<name>.bias`, `<name>.norm`, `<name>.norm_silu`,
and `<name>.meta` = [groups, eps * 1e9].
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "faceclip-core", "tests", "fixtures", "group_norm.safetensors")

# name, input shape, groups, eps, input mean, input spread
CASES = [
    ("chunked", (1, 15, 45, 61), 5, 1e-6, 0.3, 1.5),
    ("sdxl_groups", (2, 64, 9, 7), 32, 1e-5, -0.2, 1.0),
    ("offset", (2, 32, 9, 7), 8, 1e-6, 50.0, 0.1),
    ("rank3", (2, 8, 33), 4, 1e-5, 1.0, 2.0),
]


def main() -> None:
    torch.manual_seed(20261127)
    tensors = {}
    for name, shape, groups, eps, mean, spread in CASES:
        channels = shape[1]
        x = mean + spread * torch.randn(shape)
        norm = nn.GroupNorm(groups, channels, eps=eps)
        with torch.no_grad():
            norm.weight.copy_(1.0 + 0.3 * torch.randn(channels))
            norm.bias.copy_(0.2 * torch.randn(channels))
            y = norm(x)
        tensors[f"{name}.x"] = x.contiguous()
        tensors[f"{name}.weight"] = norm.weight.detach().clone()
        tensors[f"{name}.bias"] = norm.bias.detach().clone()
        tensors[f"{name}.norm"] = y.contiguous()
        tensors[f"{name}.norm_silu"] = F.silu(y).contiguous()
        tensors[f"{name}.meta"] = torch.tensor([float(groups), eps * 1e9])
    save_file(tensors, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
