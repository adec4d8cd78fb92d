"""PyTorch side of the GPU benchmark: the shapes of `benches/gpu/main.rs`, timed the same way.

Run by `benches/gpu/run.sh` on the GPU host (python3 there has torch; diffusers travels as a wheel).
Each case: `warmup` calls, then `iters` calls each followed by `torch.cuda.synchronize()` (median
of host wall times), then `iters` calls and one synchronize (mean per call; `host_ms`: the part
until the last call returned, before the synchronize). Work (FLOP) of the
model stages is counted by `torch.utils.flop_counter`; peak memory by the caching allocator.

    python3 benches/gpu/torch_ref.py --dtype bf16|f32 [--device cpu] [--small] [--only a,b]
        [--unet BATCHxHxW]

On the CPU it is also the PyTorch side of `cargo bench --bench unet` (one SDXL UNet step at
512×512, batch 1): `--device cpu --dtype f32 --only unet_step --unet 1x64x64`.

f32 runs with TF32 disabled for matmul and cuDNN, so both sides compute in full f32.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SDXL_UNET = dict(
    act_fn="silu",
    addition_embed_type="text_time",
    addition_embed_type_num_heads=64,
    addition_time_embed_dim=256,
    attention_head_dim=[5, 10, 20],
    block_out_channels=[320, 640, 1280],
    center_input_sample=False,
    cross_attention_dim=2048,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    projection_class_embeddings_input_dim=2816,
    sample_size=128,
    transformer_layers_per_block=[1, 2, 10],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    use_linear_projection=True,
)

SDXL_VAE = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    in_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    out_channels=3,
    sample_size=1024,
    scaling_factor=0.13025,
    up_block_types=["UpDecoderBlock2D"] * 4,
)

FLUX_DEV = dict(
    attention_head_dim=128,
    axes_dims_rope=(16, 56, 56),
    guidance_embeds=True,
    in_channels=64,
    joint_attention_dim=4096,
    num_attention_heads=24,
    num_layers=19,
    num_single_layers=38,
    patch_size=1,
    pooled_projection_dim=768,
)
# Every block of SDXL's UNet at a tenth of the width (`sdxl_narrow` in main.rs): on a 256×192
# image's latent its step costs almost nothing on the GPU but queueing and launching its kernels.
SDXL_UNET_NARROW = dict(SDXL_UNET, block_out_channels=[32, 64, 128], attention_head_dim=[1, 2, 4])
OVERHEAD_LATENT = (32, 24)

# `--small`: the shapes of `gpu --small` (one double and one single block, 2 heads).
FLUX_SMALL = dict(FLUX_DEV, num_layers=1, num_single_layers=1, num_attention_heads=2,
                  joint_attention_dim=64, pooled_projection_dim=32)
IMAGE_GUIDANCE = 5.0
# The parity fixtures' reference modules (the FaceCLIP fuser over transformers' GroundingDINO).
PARITY_TOOLS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "tools", "parity")


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--dtype", choices=["f32", "bf16"], default="bf16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default=None)
    p.add_argument("--unet", default="2x144x108", help="UNet step latent: BATCHxHxW")
    return p.parse_args()


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
        self.only = args.only.split(",") if args.only else None

    def wants(self, name):
        return self.only is None or any(name.startswith(n) for n in self.only)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def rand(self, *shape):
        return torch.rand(*shape, device=self.device, dtype=self.dtype) * 2 - 1

    def time(self, name, shape, flop, f, iters=None, warmup=None):
        if not self.wants(name):
            return
        iters = iters or self.args.iters
        warmup = self.args.warmup if warmup is None else warmup
        cuda = self.device.type == "cuda"
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(warmup):
                f()
                self.sync()
            warmup_s = time.perf_counter() - start
            if cuda:
                # Cached blocks of earlier calls returned first, so the reserved peak is the
                # timed calls' footprint (inputs and weights included), as Burn's pool peak is.
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            synced = []
            for _ in range(iters):
                t = time.perf_counter()
                f()
                self.sync()
                synced.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            for _ in range(iters):
                f()
            host = (time.perf_counter() - t) * 1e3 / iters
            self.sync()
            batched = (time.perf_counter() - t) * 1e3 / iters
        row = dict(
            impl="torch",
            backend=f"{self.device.type}-{self.args.dtype}",
            case=name,
            shape=shape,
            median_synced_ms=round(statistics.median(synced), 4),
            mean_batched_ms=round(batched, 4),
            host_ms=round(host, 4),
            flop=flop,
            warmup_s=round(warmup_s, 2),
            iters=iters,
            peak_mem_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            peak_reserved_mb=round(torch.cuda.max_memory_reserved() / 2**20, 1) if cuda else None,
        )
        print(json.dumps(row), flush=True)


def count_flop(f):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        f()
    return float(counter.get_total_flops())


def kernels(b):
    s = b.args.small
    n = 256 if s else 8192
    if b.wants("matmul"):
        x, y = b.rand(n, n), b.rand(n, n)
        b.time("matmul", f"{n}x{n}x{n}", 2.0 * n**3, lambda: x @ y)
        del x, y
    # The UNet's widest linear layer: the GEGLU projection of a 640-wide transformer block.
    rows, d_in, d_out = (2 * 96, 64, 512) if s else (2 * 3888, 640, 5120)
    if b.wants("linear_geglu"):
        x, wt, bias = b.rand(rows, d_in), b.rand(d_out, d_in) * 0.05, b.rand(d_out)
        b.time("linear_geglu", f"[{rows},{d_in}]x{d_out}", 2.0 * rows * d_in * d_out,
               lambda: F.linear(x, wt, bias))
        del x, wt, bias
    attn = (
        [("self_attention_64", (2, 2, 96, 16), 96), ("self_attention_32", (2, 4, 24, 16), 24),
         ("cross_attention_64", (2, 2, 96, 16), 7), ("self_attention_vae", (1, 1, 96, 32), 96)]
        if s
        else [("self_attention_64", (2, 10, 3888, 64), 3888),
              ("self_attention_32", (2, 20, 972, 64), 972),
              ("cross_attention_64", (2, 10, 3888, 64), 77),
              # The VAE's mid-block attention at 1152x864: one 512-wide head.
              ("self_attention_vae", (1, 1, 15552, 512), 15552)]
    )
    for name, (bs, h, lq, d), lk in attn:
        if not b.wants(name):
            continue
        q, k, v = b.rand(bs, h, lq, d), b.rand(bs, h, lk, d), b.rand(bs, h, lk, d)
        b.time(name, f"q[{bs},{h},{lq},{d}] kv {lk}", 4.0 * bs * h * lq * lk * d,
               lambda: F.scaled_dot_product_attention(q, k, v))
    bs, c, h, w = (2, 32, 12, 9) if s else (2, 640, 72, 54)
    if b.wants("conv3x3"):
        x, wt, bias = b.rand(bs, c, h, w), b.rand(c, c, 3, 3) * 0.02, b.rand(c)
        b.time("conv3x3", f"[{bs},{c},{h},{w}] {c}->{c}", 2.0 * bs * c * h * w * c * 9,
               lambda: F.conv2d(x, wt, bias, padding=1))
    bs, c, h, w = (2, 32, 24, 18) if s else (2, 320, 144, 108)
    if b.wants("groupnorm_silu"):
        x = b.rand(bs, c, h, w)
        norm = torch.nn.GroupNorm(32, c).to(b.device, b.dtype)
        b.time("groupnorm_silu", f"[{bs},{c},{h},{w}] 32 groups", 0.0, lambda: F.silu(norm(x)))
    bs, n, c = (2, 96, 64) if s else (2, 3888, 640)
    if b.wants("layernorm"):
        x = b.rand(bs, n, c)
        norm = torch.nn.LayerNorm(c).to(b.device, b.dtype)
        b.time("layernorm", f"[{bs},{n},{c}]", 0.0, lambda: norm(x))
    launch(b)


LAUNCH_CALLS = 256


def launch(b):
    """What one call costs the host: LAUNCH_CALLS chained calls on tiny operands (the `launch_*`
    cases of main.rs; per call, divide by LAUNCH_CALLS)."""
    n = LAUNCH_CALLS

    def chain(name, shape, step, x):
        def f():
            y = x
            for _ in range(n):
                y = step(y)
            return y
        b.time(name, f"{n} calls, {shape}", 0.0, f)

    if b.wants("launch_linear"):
        wt = b.rand(64, 64) * 0.1
        chain("launch_linear", "[1,1,8,64]x64", lambda y: F.linear(y, wt), b.rand(1, 1, 8, 64))
    if b.wants("launch_matmul"):
        wt = b.rand(1, 1, 64, 64) * 0.1
        chain("launch_matmul", "[1,1,8,64]x64", lambda y: y @ wt, b.rand(1, 1, 8, 64))
    if b.wants("launch_conv"):
        wt, bias = b.rand(16, 16, 3, 3) * 0.1, b.rand(16)
        chain("launch_conv", "[1,16,8,8] 3x3", lambda y: F.conv2d(y, wt, bias, padding=1),
              b.rand(1, 16, 8, 8))
    if b.wants("launch_attention"):
        k, v = b.rand(1, 2, 16, 64), b.rand(1, 2, 16, 64)
        chain("launch_attention", "q,k,v [1,2,16,64]",
              lambda y: F.scaled_dot_product_attention(y, k, v), b.rand(1, 2, 16, 64))
    if b.wants("launch_group_norm"):
        norm = torch.nn.GroupNorm(8, 32).to(b.device, b.dtype)
        chain("launch_group_norm", "[1,32,8,8] 8 groups + SiLU", lambda y: F.silu(norm(y)),
              b.rand(1, 32, 8, 8))
    if b.wants("launch_elementwise"):
        chain("launch_elementwise", "[1,1,8,64] mul, exp, mul",
              lambda y: (y * 0.999).exp() * 0.5, b.rand(1, 1, 8, 64))


def build(b, make):
    """`make()`'s model, built on the device in the benchmark's dtype (random weights drawn
    there: on the host the SDXL UNet's 2.6 B take tens of seconds), in eval mode."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(b.dtype)
    try:
        with torch.device(b.device):
            return make().eval()
    finally:
        torch.set_default_dtype(default)


def stages(b):
    s = b.args.small
    if b.wants("vae_decode"):
        from diffusers import AutoencoderKL

        vae = build(b, lambda: AutoencoderKL(**SDXL_VAE))
        h, w = (8, 6) if s else (144, 108)
        z = torch.randn(1, 4, h, w, device=b.device, dtype=b.dtype)
        f = lambda: vae.decode(z).sample
        b.time("vae_decode", f"latent [1,4,{h},{w}] -> {h * 8}x{w * 8}", count_flop(f), f)
        del vae
    if b.wants("faceclip_encoder"):
        faceclip_encoder(b)
    if b.wants("unet_step"):
        n, h, w = (2, 16, 12) if s else (int(v) for v in b.args.unet.split("x"))
        unet_step(b, "unet_step", SDXL_UNET, n, h, w)
    if b.wants("unet_overhead"):
        unet_step(b, "unet_overhead", SDXL_UNET_NARROW, 2, *OVERHEAD_LATENT)
    if b.wants("sdxl_image"):
        sdxl_image(b)
    if b.wants("flux_step"):
        flux_step(b)


def unet_step(b, name, config, n, h, w):
    """One UNet step of `config` on an [n, 4, h, w] latent with 77 text tokens."""
    from diffusers import UNet2DConditionModel

    unet = build(b, lambda: UNet2DConditionModel(**config))
    x = torch.randn(n, 4, h, w, device=b.device, dtype=b.dtype)
    t = torch.tensor([981.0] * n, device=b.device)
    ctx = torch.randn(n, 77, 2048, device=b.device, dtype=b.dtype)
    added = dict(
        text_embeds=torch.randn(n, 1280, device=b.device, dtype=b.dtype),
        time_ids=torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * n, device=b.device,
                              dtype=b.dtype),
    )
    f = lambda: unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
    b.time(name, f"[{n},4,{h},{w}] ctx 77x2048", count_flop(f), f)


def sdxl_image(b):
    """50 Euler steps with guidance (UNet on batch 2) and the VAE decode: `gpu`'s `sdxl_image`."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    unet = build(b, lambda: UNet2DConditionModel(**SDXL_UNET))
    vae = build(b, lambda: AutoencoderKL(**SDXL_VAE))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", timestep_spacing="leading",
                                       steps_offset=1)
    (h, w), steps = ((16, 12), 2) if b.args.small else ((144, 108), 50)
    randn = lambda *shape: torch.randn(*shape, device=b.device, dtype=b.dtype)
    ctx, pooled, noise = randn(2, 77, 2048), randn(2, 1280), randn(1, 4, h, w)
    time_ids = torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * 2, device=b.device,
                            dtype=b.dtype)
    added = dict(text_embeds=pooled, time_ids=time_ids)

    def image():
        scheduler.set_timesteps(steps, device=b.device)
        latents = noise * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            eps = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
            negative, positive = eps.chunk(2)
            eps = negative + IMAGE_GUIDANCE * (positive - negative)
            latents = scheduler.step(eps, t, latents).prev_sample
        return vae.decode(latents / SDXL_VAE["scaling_factor"]).sample

    b.time("sdxl_image", f"{steps} steps CFG {IMAGE_GUIDANCE:g} + decode, latent [1,4,{h},{w}]",
           0.0, image, iters=1, warmup=1)
    del unet, vae


def flux_step(b):
    """One FLUX.1-dev transformer call at 1152×864 (3888 image + 512 text tokens): `flux_step`."""
    from diffusers import FluxTransformer2DModel

    config = FLUX_SMALL if b.args.small else FLUX_DEV
    (h, w), text = ((16, 12), 16) if b.args.small else ((144, 108), 512)
    # 12 B parameters: 24 GB in bf16.
    model = build(b, lambda: FluxTransformer2DModel(**config))
    tokens = (h // 2) * (w // 2)
    randn = lambda *shape: torch.randn(*shape, device=b.device, dtype=b.dtype)
    rows = torch.arange(h // 2, device=b.device).repeat_interleave(w // 2)
    cols = torch.arange(w // 2, device=b.device).repeat(h // 2)
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], 1).to(b.dtype)
    inputs = dict(
        hidden_states=randn(1, tokens, config["in_channels"]),
        encoder_hidden_states=randn(1, text, config["joint_attention_dim"]),
        pooled_projections=randn(1, config["pooled_projection_dim"]),
        timestep=torch.tensor([0.9], device=b.device, dtype=b.dtype),
        guidance=torch.tensor([3.5], device=b.device, dtype=b.dtype),
        img_ids=img_ids,
        txt_ids=torch.zeros(text, 3, device=b.device, dtype=b.dtype),
    )
    f = lambda: model(**inputs).sample
    b.time("flux_step", f"[1,{tokens},64] + text {text}", count_flop(f), f)
    del model


class Block(torch.nn.Module):
    """A pre-norm transformer block as open_clip's text towers and timm's ViT compose it
    (attention through SDPA, as both call it; MLP 4× wide)."""

    def __init__(self, width, heads, act, qkv_bias, eps=1e-5):
        super().__init__()
        nn = torch.nn
        self.heads, self.act = heads, act
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=eps), nn.LayerNorm(width, eps=eps)
        self.qkv, self.proj = nn.Linear(width, 3 * width, bias=qkv_bias), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x, causal):
        n, tokens, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, tokens, width))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class EncoderBranch(torch.nn.Module):
    """One FaceCLIP branch (spec §2–§5, as `ReferenceBranch` in tools/parity/make_fixtures.py
    composes it from timm, open_clip and transformers): the ArcFace ViT (112², patch 9, no class
    token, ReLU6, identity head), the CLIP text tower with the identity token put in before the
    positions, the projections, and the fuser (transformers' GroundingDINO layers). Plain torch
    stands in for timm and open_clip, which the GPU host lacks."""

    def __init__(self, width, layers, heads, act, face, fuser_layers, ffn):
        super().__init__()
        if PARITY_TOOLS not in sys.path:
            sys.path.insert(0, PARITY_TOOLS)
        from faceclip_fuser import ReferenceFuser

        nn = torch.nn
        face_width, face_depth, face_heads, identity = face
        self.patch_embed = nn.Conv2d(3, face_width, 9, stride=9)
        # Buffers, not parameters: the flop counter cannot take parameters as module inputs.
        self.register_buffer("face_pos", torch.randn(1, 144, face_width) * 0.02)
        self.face_blocks = nn.ModuleList(
            Block(face_width, face_heads, F.relu6, qkv_bias=False) for _ in range(face_depth))
        self.face_norm = nn.LayerNorm(face_width, eps=1e-5)
        self.feature = nn.Sequential(
            nn.Linear(144 * face_width, face_width, bias=False), nn.BatchNorm1d(face_width, eps=2e-5),
            nn.Linear(face_width, identity, bias=False), nn.BatchNorm1d(identity, eps=2e-5))
        self.token_embedding = nn.Embedding(49408, width)
        self.register_buffer("text_pos", torch.randn(77, width) * 0.01)
        self.text_blocks = nn.ModuleList(Block(width, heads, act, qkv_bias=True) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.proj1 = nn.Linear(identity, width)
        self.face_patch_proj, self.face_pos_proj = nn.Linear(face_width, width), nn.Linear(face_width, width)
        self.text_embed_proj, self.text_pos_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.fuser = ReferenceFuser(width, ffn, fuser_layers)

    def forward(self, images, ids, id_mask):
        n = ids.shape[0]
        resized = F.interpolate(images, size=(112, 112), mode="bilinear", align_corners=False)
        patches = self.patch_embed(resized).flatten(2).transpose(1, 2) + self.face_pos
        for block in self.face_blocks:
            patches = block(patches, causal=False)
        patches = self.face_norm(patches)
        identity = self.feature(patches.flatten(1))
        face_token = self.proj1(F.normalize(identity, dim=-1))
        x = torch.where(id_mask[..., None], face_token[:, None, :], self.token_embedding(ids))
        x = x + self.text_pos
        for block in self.text_blocks:
            x = block(x, causal=True)
        hidden = self.ln_final(x)
        pooled = hidden[torch.arange(n, device=ids.device), ids.argmax(dim=-1)]
        pos_l = self.text_pos_proj(self.text_pos)[None].expand(n, -1, -1)
        pos_v = self.face_pos_proj(self.face_pos).expand(n, -1, -1)
        fused, _ = self.fuser(self.face_patch_proj(patches), self.text_embed_proj(hidden), pos_v, pos_l)
        return fused, pooled


def faceclip_encoder(b):
    """The FaceCLIP-SDXL encoder on one 448² face and one prompt (`gpu`'s `faceclip_encoder`):
    both branches (CLIP-L and bigG text, an ArcFace ViT-L each, six fuser layers each); `--small`
    at the tiny test sizes. The token ids stand for the bench's prompt behind the identity prefix
    (start, 15 tokens with "id" at the fourth, end; tokenising costs the host microseconds)."""
    if b.args.small:
        face, fuser_layers, ffn = (32, 1, 2, 24), 2, 32
        sizes = [(16, 2, 2, quick_gelu), (24, 2, 3, F.gelu)]
    else:
        face, fuser_layers, ffn = (768, 24, 8, 512), 6, 2048
        sizes = [(768, 12, 12, quick_gelu), (1280, 32, 20, F.gelu)]
    branches = [build(b, lambda: EncoderBranch(*size, face, fuser_layers, ffn)) for size in sizes]
    ids = torch.zeros(1, 77, dtype=torch.long, device=b.device)
    prompt = [49406, 1125, 539, 320, 1014, 2533, 269, 320, 2308, 593, 3005, 736, 2225, 267, 530,
              8060, 49407]
    ids[0, :len(prompt)] = torch.tensor(prompt)
    id_mask = torch.zeros(1, 77, dtype=torch.bool, device=b.device)
    id_mask[0, 4] = True
    face_image = torch.rand(1, 3, 448, 448, device=b.device, dtype=b.dtype)

    def encode():
        (fused_l, _), (fused_g, pooled) = (branch(face_image, ids, id_mask) for branch in branches)
        return torch.cat([fused_l, fused_g], -1), pooled

    widths = sum(size[0] for size in sizes)
    b.time("faceclip_encoder", f"face 448 + prompt -> [1,77,{widths}] + [1,{sizes[1][0]}]",
           count_flop(encode), encode)
    del branches


def main():
    args = parse()
    if args.dtype == "f32":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    b = Bench(args)
    dev = torch.cuda.get_device_name() if b.device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {dev}, {args.dtype}", file=sys.stderr)
    torch.manual_seed(0)
    kernels(b)
    stages(b)


if __name__ == "__main__":
    main()
