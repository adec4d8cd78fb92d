"""Builds the parity fixtures of faceclip-unet from diffusers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_unet_fixtures.py

References (diffusers 0.33.1), all at tiny configurations with every parameter randomised
(diffusers' default init zeroes some output layers, which would hide bugs), saved with diffusers'
key names:
- `AutoencoderKL`, SDXL-style (two levels, mid-block attention, quant convs, scaling 0.13025);
- `UNet2DConditionModel`, SDXL-style (Down/CrossAttnDown levels, linear projections, GEGLU,
  text_time added conditioning) on an even and an odd latent size, and an SD-1.5-style variant
  (1×1-conv projections, no added conditioning, sin-first sinusoid, freq_shift 1);
- `StableDiffusionXLPipeline` with that UNet and VAE and SDXL's default Euler scheduler, given
  prompt embeddings and initial latents (CFG 5.0, 4 steps): the final image before 8-bit
  quantisation;
- `AutoencoderKL.tiled_decode` (diffusers' tiling with small tiles so several overlap).
"""

import json
import os

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
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


UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[16, 32, 32],
    layers_per_block=2,
    transformer_layers_per_block=[1, 1, 2],
    attention_head_dim=[2, 2, 4],
    cross_attention_dim=32,
    norm_num_groups=8,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 24,
)

# SD-1.5-style options: conv projections, no added conditioning, other sinusoid conventions.
UNET_SD15_CONFIG = dict(
    sample_size=16,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[16, 32],
    layers_per_block=1,
    attention_head_dim=4,
    cross_attention_dim=24,
    norm_num_groups=8,
    use_linear_projection=False,
    flip_sin_to_cos=False,
    freq_shift=1,
)


def save_config(module, name):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"_class_name": type(module).__name__, **dict(module.config)}, f, indent=1, default=list)


def unet_fixtures(vae):
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    randomise(unet)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, os.path.join(OUT, "unet_weights.safetensors"))
    save_config(unet, "unet_config.json")
    io = {}
    for case, (b, h, w, t) in {"even": (2, 16, 12, 901.0), "odd": (1, 10, 14, 1.0)}.items():
        sample = torch.randn(b, 4, h, w)
        context = torch.randn(b, 7, 32)
        text_embeds = torch.randn(b, 24)
        time_ids = torch.tensor([[64.0, 48.0, 0.0, 0.0, 64.0, 48.0], [32.0, 48.0, 4.0, 2.0, 64.0, 48.0]][:b])
        with torch.no_grad():
            out = unet(sample, t, encoder_hidden_states=context,
                       added_cond_kwargs=dict(text_embeds=text_embeds, time_ids=time_ids)).sample
        io.update({f"{case}.sample": sample, f"{case}.context": context, f"{case}.text_embeds": text_embeds,
                   f"{case}.time_ids": time_ids, f"{case}.timestep": torch.tensor([t]), f"{case}.out": out})
        print("unet", case, tuple(out.shape), float(out.std()))

    sd15 = UNet2DConditionModel(**UNET_SD15_CONFIG).eval()
    randomise(sd15)
    save_file({k: v.contiguous() for k, v in sd15.state_dict().items()}, os.path.join(OUT, "unet_sd15_weights.safetensors"))
    save_config(sd15, "unet_sd15_config.json")
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 24)
    with torch.no_grad():
        out = sd15(sample, 500.0, encoder_hidden_states=context).sample
    io.update({"sd15.sample": sample, "sd15.context": context, "sd15.out": out})
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "unet_io.safetensors"))

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                     tokenizer_2=None, unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    embeds = dict(prompt_embeds=torch.randn(1, 7, 32), pooled_prompt_embeds=torch.randn(1, 24),
                  negative_prompt_embeds=torch.randn(1, 7, 32), negative_pooled_prompt_embeds=torch.randn(1, 24))
    latents = torch.randn(1, 4, 16, 12)
    with torch.no_grad():
        image = pipe(height=32, width=24, num_inference_steps=4, guidance_scale=5.0, latents=latents,
                     output_type="np", **embeds).images
    save_file({**{k: v.contiguous() for k, v in embeds.items()}, "latents": latents,
               "image": torch.from_numpy(image).contiguous()}, os.path.join(OUT, "pipeline_io.safetensors"))
    print("pipeline image", image.shape, float(image.mean()), float(image.std()))

    # Tiled decoding with diffusers' own tiling: 8×8 latent tiles (16×16 pixels), overlap 0.25.
    vae.enable_tiling()
    vae.tile_latent_min_size, vae.tile_sample_min_size, vae.tile_overlap_factor = 8, 16, 0.25
    tiled_latents = torch.randn(1, 4, 20, 14)
    with torch.no_grad():
        tiled = vae.decode(tiled_latents).sample
    vae.disable_tiling()
    save_file({"latents": tiled_latents, "decoded": tiled.contiguous()}, os.path.join(OUT, "vae_tiled_io.safetensors"))
    print("tiled decode", tuple(tiled.shape), float(tiled.std()))


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
    unet_fixtures(vae)


if __name__ == "__main__":
    main()
