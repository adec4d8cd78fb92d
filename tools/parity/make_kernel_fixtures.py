"""Builds the parity fixtures of faceclip-core's fused norms and the CubeCL kernels behind them
on wgpu and CUDA: `group_norm.safetensors` (`nn::group_norm`, `nn::group_norm_silu`) and
`row_norm.safetensors` (`nn::LayerNorm`, `nn::RmsNorm`, `nn::modulated_layer_norm`).

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_kernel_fixtures.py

Group norm. Reference: `torch.nn.GroupNorm` (affine, fp32) and `torch.nn.functional.silu`. The cases cover
what the kernels treat separately: groups longer than one statistics chunk (8192 elements) with
an uneven last chunk, a batch of two, a rank-3 input, SDXL's 32 groups, and inputs whose mean is
large against their spread (where summing raw squares in fp32 would lose the variance).
For each case `<name>.x`, `<name>.weight`, `<name>.bias`, `<name>.norm`, `<name>.norm_silu`,
and `<name>.meta` = [groups, eps * 1e9].

Row norms. References: `torch.nn.LayerNorm` (with and without bias), `torch.nn.RMSNorm`, and
FLUX's modulation composed as diffusers' `AdaLayerNormZero` applies it,
`layer_norm(x, no affine) * (1 + scale[:, None]) + shift[:, None]`. Cases: a row wider than a
cube (640, uneven strides), rows narrower than the smallest cube, a large mean against the
spread, a 4-D RMSNorm over a 128-wide head, per-sample modulation. For each case `<name>.x`,
`<name>.weight` (or `.scale`), `<name>.bias` (or `.shift`) when present, `<name>.y`, and
`<name>.eps` = [eps].

Linear layers (`nn::Linear`, cuBLASLt on CUDA): `linear.safetensors`. Reference:
`torch.nn.Linear` in fp32. Cases: a rank-3 input with bias, a rank-2 input without bias, one
row. For each case `<name>.x`, `<name>.weight` (PyTorch's `[out, in]`, which the loader turns
into a transposed view), `<name>.weight_t` (the same weight stored `[in, out]`, contiguous),
`<name>.bias` when present, `<name>.y`.

Convolutions (`nn::conv_forward`, cuDNN on CUDA): `conv.safetensors`. Reference:
`torch.nn.Conv2d` in fp32. Cases: 3×3 with padding 1 (the UNet's and VAE's), a stride-2
downsampler, 1×1 without bias, a grouped 3×3. For each case `<name>.x`, `<name>.weight`,
`<name>.bias` when present, `<name>.y`, and `<name>.meta` = [stride, padding, groups].

Attention (`nn::sdpa`, cuDNN's fused attention on CUDA in bf16): `sdpa.safetensors`.
Reference: `torch.nn.functional.scaled_dot_product_attention` in fp32 on the CPU. Cases:
self-attention and cross-attention (77 keys) with head size 64 whose operands are stored
`[batch, tokens, heads, head_dim]` (as the models split heads from a projection, read through a
transposed view), a contiguous `[batch, heads, tokens, head_dim]` case with its own value
size and scale, and causal self-attention over 77 tokens (the CLIP text encoders'). For each
case `<name>.q`, `<name>.k`, `<name>.v` (as stored), `<name>.y` (`[batch, heads, tokens,
value_dim]`) and `<name>.meta` = [scale (0: head_dim^-0.5), heads-second storage (0) or
tokens-second (1), causal (1) or not (0)].
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "faceclip-core", "tests", "fixtures")
OUT = os.path.join(FIXTURES, "group_norm.safetensors")
ROW_OUT = os.path.join(FIXTURES, "row_norm.safetensors")
LINEAR_OUT = os.path.join(FIXTURES, "linear.safetensors")
CONV_OUT = os.path.join(FIXTURES, "conv.safetensors")
SDPA_OUT = os.path.join(FIXTURES, "sdpa.safetensors")

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


def affine(norm: nn.Module, width: int) -> None:
    with torch.no_grad():
        norm.weight.copy_(1.0 + 0.3 * torch.randn(width))
        if getattr(norm, "bias", None) is not None:
            norm.bias.copy_(0.2 * torch.randn(width))


def row_norms() -> None:
    torch.manual_seed(20261128)
    tensors = {}

    def layer(name, shape, eps, mean, spread, bias):
        width = shape[-1]
        x = mean + spread * torch.randn(shape)
        norm = nn.LayerNorm(width, eps=eps, bias=bias)
        affine(norm, width)
        with torch.no_grad():
            tensors[f"{name}.y"] = norm(x).contiguous()
        tensors[f"{name}.x"] = x.contiguous()
        tensors[f"{name}.weight"] = norm.weight.detach().clone()
        if bias:
            tensors[f"{name}.bias"] = norm.bias.detach().clone()
        tensors[f"{name}.eps"] = torch.tensor([eps])

    layer("layer", (2, 37, 640), 1e-5, 0.5, 2.0, True)
    layer("layer_no_bias", (3, 5, 48), 1e-6, -0.3, 1.0, False)
    layer("layer_narrow", (4, 7, 3), 1e-5, 0.0, 1.0, True)
    layer("layer_offset", (2, 9, 96), 1e-6, 30.0, 0.05, True)

    x = 0.2 + 1.3 * torch.randn(1, 4, 19, 128)
    rms = nn.RMSNorm(128, eps=1e-6)
    affine(rms, 128)
    with torch.no_grad():
        tensors["rms.y"] = rms(x).contiguous()
    tensors["rms.x"] = x.contiguous()
    tensors["rms.weight"] = rms.weight.detach().clone()
    tensors["rms.eps"] = torch.tensor([1e-6])

    x = 0.1 + torch.randn(2, 21, 96)
    shift, scale = 0.3 * torch.randn(2, 96), 0.4 * torch.randn(2, 96)
    y = F.layer_norm(x, (96,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]
    tensors.update({
        "modulated.x": x.contiguous(),
        "modulated.shift": shift,
        "modulated.scale": scale,
        "modulated.y": y.contiguous(),
        "modulated.eps": torch.tensor([1e-6]),
    })
    save_file(tensors, ROW_OUT)
    print("wrote", ROW_OUT)


def linears() -> None:
    torch.manual_seed(20261129)
    tensors = {}
    for name, shape, out_features, bias in [
        ("batched", (2, 40, 128), 96, True),
        ("no_bias", (5, 33), 17, False),
        ("one_row", (1, 64), 256, True),
    ]:
        x = torch.randn(shape)
        layer = nn.Linear(shape[-1], out_features, bias=bias)
        with torch.no_grad():
            tensors[f"{name}.y"] = layer(x).contiguous()
        tensors[f"{name}.x"] = x.contiguous()
        tensors[f"{name}.weight"] = layer.weight.detach().clone()
        tensors[f"{name}.weight_t"] = layer.weight.detach().t().contiguous()
        if bias:
            tensors[f"{name}.bias"] = layer.bias.detach().clone()
    save_file(tensors, LINEAR_OUT)
    print("wrote", LINEAR_OUT)


def convs() -> None:
    torch.manual_seed(20261130)
    tensors = {}
    for name, shape, out_channels, kernel, stride, padding, groups, bias in [
        ("same", (2, 16, 12, 10), 24, 3, 1, 1, 1, True),
        ("down", (1, 8, 13, 11), 8, 3, 2, 1, 1, True),
        ("pointwise", (2, 12, 7, 5), 20, 1, 1, 0, 1, False),
        ("grouped", (1, 8, 9, 9), 12, 3, 1, 1, 4, True),
    ]:
        x = torch.randn(shape)
        conv = nn.Conv2d(shape[1], out_channels, kernel, stride=stride, padding=padding,
                         groups=groups, bias=bias)
        with torch.no_grad():
            tensors[f"{name}.y"] = conv(x).contiguous()
        tensors[f"{name}.x"] = x.contiguous()
        tensors[f"{name}.weight"] = conv.weight.detach().clone()
        if bias:
            tensors[f"{name}.bias"] = conv.bias.detach().clone()
        tensors[f"{name}.meta"] = torch.tensor([float(stride), float(padding), float(groups)])
    save_file(tensors, CONV_OUT)
    print("wrote", CONV_OUT)


def attentions() -> None:
    torch.manual_seed(20261131)
    tensors = {}
    # name, q shape, k shape, v shape (as stored), scale (None: default), tokens second, causal
    for name, q_shape, k_shape, v_shape, scale, tokens_second, causal in [
        ("self", (2, 40, 2, 64), (2, 40, 2, 64), (2, 40, 2, 64), None, True, False),
        ("cross", (2, 40, 2, 64), (2, 77, 2, 64), (2, 77, 2, 64), None, True, False),
        ("scaled", (1, 3, 33, 16), (1, 3, 20, 16), (1, 3, 20, 32), 0.3, False, False),
        ("causal", (1, 77, 2, 64), (1, 77, 2, 64), (1, 77, 2, 64), None, True, True),
    ]:
        q, k, v = torch.randn(q_shape), torch.randn(k_shape), torch.randn(v_shape)
        heads_second = (lambda t: t.transpose(1, 2)) if tokens_second else (lambda t: t)
        y = F.scaled_dot_product_attention(
            heads_second(q), heads_second(k), heads_second(v), scale=scale, is_causal=causal
        )
        tensors[f"{name}.q"] = q.contiguous()
        tensors[f"{name}.k"] = k.contiguous()
        tensors[f"{name}.v"] = v.contiguous()
        tensors[f"{name}.y"] = y.contiguous()
        tensors[f"{name}.meta"] = torch.tensor([scale or 0.0, float(tokens_second), float(causal)])
    save_file(tensors, SDPA_OUT)
    print("wrote", SDPA_OUT)


if __name__ == "__main__":
    main()
    row_norms()
    linears()
    convs()
    attentions()
