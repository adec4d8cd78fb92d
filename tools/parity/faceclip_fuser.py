"""FaceCLIP's fuser (shared/design/faceclip-architecture.md §5.2) over transformers' GroundingDINO
layers, and the key names of the released checkpoint: used by the parity fixtures
(make_fixtures.py, make_facet5_fixtures.py) and by the PyTorch side of the GPU benchmark
(benches/gpu/torch_ref.py). Needs only torch and transformers.

Run by hand, it checks that the transformers installed now reproduces the committed fuser fixture
(made with the pinned transformers 4.57.1), so that a benchmark host's newer transformers computes
the same fuser:

    python tools/parity/faceclip_fuser.py
"""

import os

import torch
import torch.nn as nn


def grounding_dino_config(d_model: int, ffn: int):
    from transformers import GroundingDinoConfig

    # FaceCLIP's fuser: 8 deformable heads, 4 points, one level; GroundingDINO derives the text
    # enhancer (heads/2, ffn/2) and the bi-attention (embed ffn/2, heads/2) from these.
    return GroundingDinoConfig(
        d_model=d_model, encoder_attention_heads=8, encoder_ffn_dim=ffn, encoder_n_points=4,
        num_feature_levels=1, activation_function="relu", layer_norm_eps=1e-5, disable_custom_kernels=True,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, text_enhancer_dropout=0.0,
        fusion_dropout=0.0, fusion_droppath=0.0,
    )


def released_fusion_keys(state: dict, prefix: str) -> dict:
    """transformers GroundingDinoFusionLayer names -> FaceCLIP (original GroundingDINO) names."""
    rename = {
        "layer_norm_vision": "layer_norm_v", "layer_norm_text": "layer_norm_l",
        "vision_param": "gamma_v", "text_param": "gamma_l",
        "attn.vision_proj": "attn.v_proj", "attn.text_proj": "attn.l_proj",
        "attn.values_vision_proj": "attn.values_v_proj", "attn.values_text_proj": "attn.values_l_proj",
        "attn.out_vision_proj": "attn.out_v_proj", "attn.out_text_proj": "attn.out_l_proj",
    }
    out = {}
    for k, v in state.items():
        for a, b in rename.items():
            if k.startswith(a + ".") or k == a:
                k = b + k[len(a):]
                break
        out[prefix + k] = v
    return out


def released_text_keys(state: dict, prefix: str) -> dict:
    """GroundingDinoTextEnhancerLayer -> nn.TransformerEncoderLayer-style names (packed in_proj)."""
    out = {
        prefix + "self_attn.in_proj_weight": torch.cat([state[f"self_attn.{n}.weight"] for n in ("query", "key", "value")]),
        prefix + "self_attn.in_proj_bias": torch.cat([state[f"self_attn.{n}.bias"] for n in ("query", "key", "value")]),
    }
    rename = {"self_attn.out_proj": "self_attn.out_proj", "fc1": "linear1", "fc2": "linear2",
              "layer_norm_before": "norm1", "layer_norm_after": "norm2"}
    for k, v in state.items():
        for a, b in rename.items():
            if k.startswith(a + "."):
                out[prefix + b + k[len(a):]] = v
    return out


def released_deformable_keys(state: dict, prefix: str) -> dict:
    rename = {"self_attn_layer_norm": "norm1", "fc1": "linear1", "fc2": "linear2", "final_layer_norm": "norm2",
              "self_attn": "self_attn"}
    out = {}
    for k, v in state.items():
        a = k.split(".")[0]
        out[prefix + rename[a] + k[len(a):]] = v
    return out


def grid_reference_points(grid: int, batch: int) -> torch.Tensor:
    r, c = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    ref = torch.stack([(c.flatten() + 0.5) / grid, (r.flatten() + 0.5) / grid], -1)
    return ref[None, :, None, :].expand(batch, grid * grid, 1, 2).contiguous()


class ReferenceFuser(nn.Module):
    """The FaceCLIP fuser loop (spec §5.2) over transformers' GroundingDINO layers."""

    def __init__(self, d_model: int, ffn: int, layers: int):
        super().__init__()
        from transformers.models.grounding_dino.modeling_grounding_dino import (
            GroundingDinoDeformableLayer, GroundingDinoFusionLayer, GroundingDinoTextEnhancerLayer)

        cfg = grounding_dino_config(d_model, ffn)
        self.fusion = nn.ModuleList([GroundingDinoFusionLayer(cfg) for _ in range(layers)])
        self.text = nn.ModuleList([GroundingDinoTextEnhancerLayer(cfg) for _ in range(layers)])
        self.deform = nn.ModuleList([GroundingDinoDeformableLayer(cfg) for _ in range(layers)])

    def forward(self, v, l, pos_v, pos_l):
        batch, device = v.shape[0], v.device
        shapes = torch.tensor([[12, 12]], device=device)
        start = torch.tensor([0], device=device)
        no_mask = torch.zeros(1, 1, 1, 1, device=device, dtype=v.dtype)
        ref = grid_reference_points(12, batch).to(device, v.dtype)
        for fusion, text, deform in zip(self.fusion, self.text, self.deform):
            (v, _), (l, _) = fusion(v, l)
            l, _ = text(l, attention_masks=no_mask, position_embeddings=pos_l)
            v, _ = deform(v, attention_mask=None, position_embeddings=pos_v, reference_points=ref,
                          spatial_shapes=shapes, spatial_shapes_list=[(12, 12)], level_start_index=start)
        return l, v

    def released_state(self, prefix: str) -> dict:
        out = {}
        for i, (f, t, d) in enumerate(zip(self.fusion, self.text, self.deform)):
            out.update(released_fusion_keys(f.state_dict(), f"{prefix}encoder.fusion_layers.{i}."))
            out.update(released_text_keys(t.state_dict(), f"{prefix}encoder.text_layers.{i}."))
            out.update(released_deformable_keys(d.state_dict(), f"{prefix}encoder.layers.{i}."))
        return {k: v.detach().bfloat16().contiguous() for k, v in out.items()}

    def load_released_state(self, state: dict, prefix: str) -> None:
        """Loads weights stored under the released names (the inverse of `released_state`)."""
        own = {}
        for i, layers in enumerate(zip(self.fusion, self.text, self.deform)):
            kinds = (("fusion", "fusion_layers", released_fusion_keys), ("text", "text_layers", released_text_keys),
                     ("deform", "layers", released_deformable_keys))
            for layer, (name, released_name, rename) in zip(layers, kinds):
                mine = layer.state_dict()
                # The renames pass each tensor through untouched, except the packed q, k, v.
                by_tensor = {id(value): key for key, value in mine.items()}
                for key, value in rename(mine, f"{prefix}encoder.{released_name}.{i}.").items():
                    if id(value) in by_tensor:
                        own[f"{name}.{i}.{by_tensor[id(value)]}"] = state[key]
                        continue
                    kind = key.rsplit("_", 1)[1]  # in_proj_weight / in_proj_bias
                    for part, chunk in zip(("query", "key", "value"), state[key].chunk(3)):
                        own[f"{name}.{i}.self_attn.{part}.{kind}"] = chunk
        self.load_state_dict({key: value.float() for key, value in own.items()})


def check_committed_fixture() -> None:
    """The committed fuser fixture (make_fixtures.py's fuser_fixture: width 32, ffn 64, two
    layers), recomputed with the transformers installed now."""
    from safetensors.torch import load_file

    import transformers

    fixtures = os.path.join(os.path.dirname(__file__), "..", "..", "faceclip-fusion", "tests", "fixtures")
    weights = load_file(os.path.join(fixtures, "fuser_weights.safetensors"))
    io = load_file(os.path.join(fixtures, "fuser_io.safetensors"))
    fuser = ReferenceFuser(32, 64, 2).eval()
    fuser.load_released_state(weights, "fuser.")
    batch = io["v"].shape[0]
    with torch.no_grad():
        fused, fused_face = fuser(io["v"], io["l"], io["pos_v"].expand(batch, -1, -1),
                                  io["pos_l"].expand(batch, -1, -1))
    for name, got in (("fused", fused), ("fused_face", fused_face)):
        want = io[name]
        error = float((got - want).norm() / want.norm())
        print(f"transformers {transformers.__version__}: {name} relative L2 error {error:.2e}")
        assert error < 1e-5, f"{name} differs from the committed fixture"


if __name__ == "__main__":
    check_committed_fixture()
