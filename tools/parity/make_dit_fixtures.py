"""Builds the parity fixtures of faceclip-dit from diffusers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_dit_fixtures.py

References (diffusers 0.33.1), every parameter randomised (diffusers zero-initialises nothing
here but its default init hides modulation bugs), saved with diffusers' key names:
- `FluxTransformer2DModel` at a tiny FLUX.1-dev-style configuration (1 double + 2 single blocks,
  2 heads × 16 with RoPE axes (4, 6, 6), guidance embedding), called as FluxPipeline calls it
  (timestep σ, guidance, ids from `_prepare_latent_image_ids`, zero text ids);
- FluxPipeline's `_pack_latents` / `_unpack_latents`;
- `FluxPipeline` end to end with that transformer, a tiny FLUX-style VAE (2 latent channels, no
  quant convs, scaling 0.3611, shift 0.1159) and FLUX.1-dev's scheduler config, given prompt
  embeddings, negative embeddings (true CFG 3.5), distilled guidance 1.0 and packed initial
  latents, 4 steps: the final image before 8-bit quantisation;
- the same transformer re-saved sharded by `save_pretrained` and as a `.pt` (see `sharded`).
"""

import json
import os

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "faceclip-dit", "tests", "fixtures")

torch.manual_seed(20261126)

CONFIG = dict(
    patch_size=1,
    in_channels=8,
    num_layers=1,
    num_single_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=24,
    pooled_projection_dim=12,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),
)


def randomise(module):
    with torch.no_grad():
        for name, p in module.state_dict(keep_vars=True).items():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.uniform_(-1.5 / fan_in**0.5, 1.5 / fan_in**0.5)
            elif name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or "norm_added" in name:
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.1)


def main():
    os.makedirs(OUT, exist_ok=True)
    model = FluxTransformer2DModel(**CONFIG).eval()
    randomise(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(OUT, "flux_weights.safetensors"))
    with open(os.path.join(OUT, "flux_config.json"), "w") as f:
        json.dump({"_class_name": "FluxTransformer2DModel", **dict(model.config)}, f, indent=1, default=list)

    latents = torch.randn(2, 2, 6, 8)  # [batch, latent channels, h, w]
    packed = FluxPipeline._pack_latents(latents, 2, 2, 6, 8)
    image_ids = FluxPipeline._prepare_latent_image_ids(2, 3, 4, "cpu", torch.float32)
    context = torch.randn(2, 5, 24)
    text_ids = torch.zeros(5, 3)
    pooled = torch.randn(2, 12)
    sigma = torch.tensor([0.7, 0.7])
    guidance = torch.tensor([3.5, 3.5])
    with torch.no_grad():
        out = model(hidden_states=packed, timestep=sigma, guidance=guidance, pooled_projections=pooled,
                    encoder_hidden_states=context, txt_ids=text_ids, img_ids=image_ids).sample
    unpacked = FluxPipeline._unpack_latents(out, 12, 16, 2)  # image 12×16 with vae_scale_factor 2
    save_file({"latents": latents, "packed": packed.contiguous(), "image_ids": image_ids, "context": context,
               "pooled": pooled, "out": out.contiguous(), "unpacked_out": unpacked.contiguous()},
              os.path.join(OUT, "flux_io.safetensors"))
    print("flux", tuple(out.shape), float(out.std()), "unpacked", tuple(unpacked.shape))

    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[16, 32], layers_per_block=1,
                        latent_channels=2, norm_num_groups=8, sample_size=32, scaling_factor=0.3611,
                        shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False).eval()
    randomise(vae)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, os.path.join(OUT, "flux_vae_weights.safetensors"))
    with open(os.path.join(OUT, "flux_vae_config.json"), "w") as f:
        json.dump({"_class_name": "AutoencoderKL", **dict(vae.config)}, f, indent=1, default=list)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=model)
    pipe.set_progress_bar_config(disable=True)
    embeds = dict(prompt_embeds=torch.randn(1, 5, 24), pooled_prompt_embeds=torch.randn(1, 12),
                  negative_prompt_embeds=torch.randn(1, 5, 24), negative_pooled_prompt_embeds=torch.randn(1, 12))
    start = FluxPipeline._pack_latents(torch.randn(1, 2, 6, 8), 1, 2, 6, 8)
    with torch.no_grad():
        image = pipe(height=12, width=16, num_inference_steps=4, guidance_scale=1.0, true_cfg_scale=3.5,
                     latents=start, output_type="np", **embeds).images
    save_file({**{k: v.contiguous() for k, v in embeds.items()}, "latents": start.contiguous(),
               "image": torch.from_numpy(image).contiguous()}, os.path.join(OUT, "flux_pipeline_io.safetensors"))
    print("flux pipeline image", image.shape, float(image.mean()), float(image.std()))


def sharded():
    """The fixture transformer re-saved by diffusers' own `save_pretrained` in ~150 KB shards
    (`diffusion_pytorch_model-0000k-of-0000n.safetensors` + `.safetensors.index.json`), the
    layout of the released FLUX.1-dev `transformer/` folder, and as a `torch.save` archive like
    FaceCLIP's `model/dit.pt`. Reads `flux_weights.safetensors`, so
    it can be rerun alone: `python tools/parity/make_dit_fixtures.py sharded`."""
    import shutil
    from safetensors.torch import load_file

    model = FluxTransformer2DModel(**CONFIG).eval()
    model.load_state_dict(load_file(os.path.join(OUT, "flux_weights.safetensors")))
    target = os.path.join(OUT, "flux_sharded")
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(target, max_shard_size="150KB", safe_serialization=True)
    print("sharded", sorted(os.listdir(target)))
    # FaceCLIP ships its FLUX transformer as `model/dit.pt`: a torch.save'd state dict.
    torch.save(model.state_dict(), os.path.join(OUT, "flux_dit.pt"))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["sharded"]:
        sharded()
    else:
        main()
        sharded()
