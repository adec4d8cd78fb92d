"""Builds the parity fixtures of faceclip-rs from the independent PyTorch references.

Run by hand (never by CI) from the repository root, in a venv with requirements.txt:

    python -m venv ../pyref && ../pyref/bin/pip install -r tools/parity/requirements.txt
    ../pyref/bin/python tools/parity/make_fixtures.py

References used:
  * packed MHA      torch.nn.MultiheadAttention (batch_first=True)
  * tokenizer       open_clip.tokenize (OpenCLIP SimpleTokenizer) and transformers CLIPTokenizer
  * text tower      open_clip.transformer.TextTransformer at tiny sizes (QuickGELU and GELU)
  * face ViT trunk  timm VisionTransformer(img_size=112, patch_size=9, class_token=False,
                    global_pool='', qkv_bias=False, act_layer=ReLU6, LayerNorm eps 1e-5) — the
                    same key names as the released ArcFace ViT
  * face ViT head   plain torch.nn: Linear -> BatchNorm1d -> Linear -> BatchNorm1d (eval)
  * resize          torch.nn.functional.interpolate(bilinear, align_corners=False)

The FaceCLIP composition (identity-token replacement before positions, pooled state without the
projection) has no package; it is composed here from the reference modules, following
shared/design/faceclip-architecture.md §3.  Every parameter and buffer is randomised (BatchNorm
running statistics included).  Weights are rounded to bf16-representable values so they can be
stored as bf16 (exercising the cast path) while the reference still computes in fp32.
"""

import gzip
import json
import os
import sys
import shutil
from functools import partial

import numpy as np
import open_clip
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, TextTransformer
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from faceclip_fuser import ReferenceFuser, grid_reference_points  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORE = os.path.join(ROOT, "faceclip-core", "tests", "fixtures")
ENC = os.path.join(ROOT, "faceclip-encoders", "tests", "fixtures")
FUS = os.path.join(ROOT, "faceclip-fusion", "tests", "fixtures")
VOCAB = os.path.join(ROOT, "faceclip-encoders", "assets", "bpe_simple_vocab_16e6.txt.gz")

torch.manual_seed(20261126)
np.random.seed(20261126)


def randomise(module: nn.Module, scale: float = 1.0) -> None:
    """Fills every stored parameter and buffer with random, bf16-representable values.

    Non-persistent buffers (open_clip's causal `attn_mask`) are computed constants, not weights:
    they are left alone.
    """
    with torch.no_grad():
        for name, p in module.state_dict(keep_vars=True).items():
            if not p.is_floating_point():
                continue
            if name.endswith("running_var"):
                v = torch.rand_like(p) + 0.5
            elif p.ndim == 1 and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn_like(p)
            elif p.ndim == 1:
                v = 0.1 * torch.randn_like(p)
            else:
                fan_in = max(1, int(np.prod(p.shape[1:])))
                v = torch.randn_like(p) * scale / np.sqrt(fan_in)
            p.copy_(v.bfloat16().float())


def bf16_state(module: nn.Module, prefix: str = "") -> dict:
    return {prefix + k: v.detach().bfloat16().contiguous() for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------- tokenizer
def hf_clip_tokenizer():
    """HF CLIPTokenizer built from the bundled BPE list (the layout of openai/clip-vit-large-patch14,
    FLUX's `tokenizer`): pads with `<|endoftext|>`."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    tmp = os.path.join(ROOT, "target", "hf_clip_tok")
    os.makedirs(tmp, exist_ok=True)
    st = SimpleTokenizer()
    # The OpenAI vocab.json spells the specials <|startoftext|> / <|endoftext|>.
    vocab = {k: v for k, v in st.encoder.items() if k not in ("<start_of_text>", "<end_of_text>")}
    vocab.update({"<|startoftext|>": 49406, "<|endoftext|>": 49407})
    with open(os.path.join(tmp, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    merges = gzip.open(VOCAB).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    with open(os.path.join(tmp, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    hf = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"))
    shutil.rmtree(tmp)
    return hf


def tokenizer_fixture() -> None:
    prompts = [
        "Photo of a id person. A woman wearing a blue denim shirt and khaki pants, on a rocky desert plateau.",
        "",
        "   multiple    spaces\tand\nnewlines   ",
        "UPPER case Words AND Numbers 12345 and 3.14",
        "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe",
        "emoji \U0001F600\U0001F680 and \u2764\ufe0f hearts",
        "HTML &amp; entities &lt;3 &quot;quoted&quot; &amp;amp; double",
        "\u4e2d\u6587\u5b57\u7b26 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4",
        "it's they're we've I'm you'll he'd",
        "punctuation!!! ... ??? (brackets) [square] {curly} #hash @at",
        "a <start_of_text> literal and <end_of_text> specials",
        "id person id",
        " ".join(["word"] * 120),
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "\u201csmart\u201d \u2018quotes\u2019 \ufb01ne \uff26\uff35\uff2c\uff2c width",
        "decomposed e\u0301 and nbsp\u00a0here",
        "triple &amp;amp;amp; escaped",
        "<b> html-looking &amp;amp;amp; text",
        "legacy &ampfoo &ampx; &eacute &hellip x a&#x41b",
    ]
    openclip = open_clip.tokenize(prompts, context_length=77).tolist()

    hf = hf_clip_tokenizer()
    hf_prompts = [p for p in prompts if "<start_of_text>" not in p] + ["a <|endoftext|> literal <|startoftext|>"]
    hf_ids = hf(hf_prompts, padding="max_length", max_length=77, truncation=True)["input_ids"]
    out = {
        "openclip": [{"prompt": p, "ids": ids} for p, ids in zip(prompts, openclip)],
        "hf": [{"prompt": p, "ids": ids} for p, ids in zip(hf_prompts, hf_ids)],
    }
    with open(os.path.join(ENC, "tokenizer.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


# --------------------------------------------------------------------------- text tower
def text_tower_fixture(name: str, vocab: int, width: int, heads: int, layers: int, act, ids, replace_pos) -> None:
    tower = TextTransformer(
        context_length=77, vocab_size=vocab, width=width, heads=heads, layers=layers,
        output_dim=width, act_layer=act, norm_layer=nn.LayerNorm,
    ).eval()
    randomise(tower)
    ids = torch.tensor(ids, dtype=torch.long)
    batch = ids.shape[0]
    face_token = (torch.randn(batch, width) * 0.5).bfloat16().float()
    mask = torch.zeros(batch, 77, dtype=torch.bool)
    for b, t in replace_pos:
        mask[b, t] = True
    with torch.no_grad():
        # FaceCLIP's encode_text: embed, overwrite the identity token, add positions, run the
        # causal transformer, ln_final; pooled = state at argmax(id) without text_projection.
        x = tower.token_embedding(ids)
        x = torch.where(mask[..., None], face_token[:, None, :], x)
        x = x + tower.positional_embedding
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        hidden = tower.ln_final(x)
        pooled = hidden[torch.arange(batch), ids.argmax(dim=-1)]
        # The library's own forward (no replacement) must agree with the composition above.
        plain = tower(ids)
        untouched = ~mask.any(dim=1)
        assert untouched.any()
        assert torch.allclose(plain[untouched], (pooled @ tower.text_projection)[untouched], atol=1e-5)
    state = bf16_state(tower)
    save_file(state, os.path.join(ENC, f"{name}_weights.safetensors"))
    save_file(
        {
            "input_ids": ids.to(torch.int64),
            "replace_mask": mask.to(torch.uint8),
            "face_token": face_token,
            "hidden": hidden.contiguous(),
            "pooled": pooled.contiguous(),
            "projected": plain.contiguous(),
        },
        os.path.join(ENC, f"{name}_io.safetensors"),
    )


# --------------------------------------------------------------------------- face ViT
def face_vit_fixture() -> None:
    dim, depth, heads, feat = 32, 2, 2, 24
    trunk = timm.models.vision_transformer.VisionTransformer(
        img_size=112, patch_size=9, in_chans=3, num_classes=0, global_pool="", class_token=False,
        embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4.0, qkv_bias=False,
        act_layer=nn.ReLU6, norm_layer=partial(nn.LayerNorm, eps=1e-5),
    ).eval()
    head = nn.Sequential(
        nn.Linear(144 * dim, dim, bias=False), nn.BatchNorm1d(dim, eps=2e-5),
        nn.Linear(dim, feat, bias=False), nn.BatchNorm1d(feat, eps=2e-5),
    ).eval()
    randomise(trunk, scale=2.0)
    randomise(head)
    with torch.no_grad():
        trunk.pos_embed.copy_((torch.randn_like(trunk.pos_embed) * 0.5).bfloat16().float())
    images = torch.rand(2, 3, 130, 150)
    with torch.no_grad():
        resized = F.interpolate(images, size=(112, 112), mode="bilinear", align_corners=False)
        tokens = trunk.forward_features(resized)
        identity = head(tokens.flatten(1))
        quarter = F.interpolate(images[:, :, :128, :128], size=(32, 32), mode="bilinear", align_corners=False)
    # The released checkpoint stores the face encoder under `model.face_clip_l.face_encoder.`
    # (FaceCLIP's loader strips every `model.`), with a training-only mask_token and BatchNorm
    # counters that strict loading must tolerate. Saved as a torch.save .pt archive in bf16.
    prefix = "model.face_clip_l.face_encoder."
    state = bf16_state(trunk, prefix)
    state.update({prefix + "feature." + k: v for k, v in bf16_state(head).items()})
    state[prefix + "mask_token"] = torch.zeros(1, 1, dim, dtype=torch.bfloat16)
    torch.save(state, os.path.join(ENC, "face_vit_weights.pt"))
    save_file(
        {
            "images": images, "resized": resized, "tokens": tokens.contiguous(),
            "identity": identity.contiguous(), "quarter": quarter.contiguous(),
        },
        os.path.join(ENC, "face_vit_io.safetensors"),
    )


# --------------------------------------------------------------------------- packed MHA
def attention_fixture() -> None:
    """torch.nn.MultiheadAttention (batch-first, packed in_proj) in the two ways FaceCLIP calls it:
    DETR style (q = k = x + pos, v = x, no mask) and causal self-attention (CLIP text)."""
    mha = nn.MultiheadAttention(embed_dim=48, num_heads=4, batch_first=True).eval()
    randomise(mha)
    x = torch.randn(2, 9, 48)
    pos = torch.randn(2, 9, 48)
    causal = torch.full((9, 9), float("-inf")).triu(1)
    with torch.no_grad():
        detr, _ = mha(x + pos, x + pos, x, need_weights=False)
        masked, _ = mha(x, x, x, attn_mask=causal, need_weights=False)
    save_file(bf16_state(mha), os.path.join(CORE, "mha_weights.safetensors"))
    outputs = {"x": x, "pos": pos, "detr": detr.contiguous(), "causal": masked.contiguous()}
    save_file(outputs, os.path.join(CORE, "mha_io.safetensors"))


# --------------------------------------------------------------------------- fuser layers
def fuser_fixture() -> None:
    d_model, ffn, layers = 32, 64, 2
    fuser = ReferenceFuser(d_model, ffn, layers).eval()
    randomise(fuser)
    with torch.no_grad():
        # Offsets of a few cells so samples fall between cells and outside the grid.
        for d in fuser.deform:
            d.self_attn.sampling_offsets.bias.copy_((torch.randn_like(d.self_attn.sampling_offsets.bias) * 3).bfloat16().float())
    v = torch.randn(2, 144, d_model)
    l = torch.randn(2, 77, d_model)
    pos_v = torch.randn(1, 144, d_model).expand(2, -1, -1)
    pos_l = torch.randn(1, 77, d_model).expand(2, -1, -1)
    with torch.no_grad():
        (v1, _), (l1, _) = fuser.fusion[0](v, l)
        t1, _ = fuser.text[0](l, attention_masks=torch.zeros(1, 1, 1, 1), position_embeddings=pos_l)
        d1, _ = fuser.deform[0](v, attention_mask=None, position_embeddings=pos_v,
                                reference_points=grid_reference_points(12, 2), spatial_shapes=torch.tensor([[12, 12]]),
                                spatial_shapes_list=[(12, 12)], level_start_index=torch.tensor([0]))
        out, out_face = fuser(v, l, pos_v, pos_l)
    state = fuser.released_state("fuser.")
    state["fuser.enc_output.weight"] = torch.zeros(d_model, d_model, dtype=torch.bfloat16)
    save_file(state, os.path.join(FUS, "fuser_weights.safetensors"))
    save_file(
        {"v": v, "l": l, "pos_v": pos_v[:1].contiguous(), "pos_l": pos_l[:1].contiguous(),
         "fusion_v": v1.contiguous(), "fusion_l": l1.contiguous(), "text": t1.contiguous(),
         "deformable": d1.contiguous(), "fused": out.contiguous(), "fused_face": out_face.contiguous()},
        os.path.join(FUS, "fuser_io.safetensors"),
    )


# --------------------------------------------------------------------------- whole encoder
ID_PREFIX = "Photo of a id person. "
SDXL_NEGATIVE = ("nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated, "
                 "ugly, disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers, "
                 "poorly drawn face, ugly eyes, imperfect eyes, deformed pupils, deformed iris, bad anatomy")


def tiny_face_vit(face_width: int, identity_dim: int) -> nn.Module:
    """A one-block ArcFace-style face ViT (timm trunk, released key names) with its identity head
    `feature` = Linear -> BatchNorm1d -> Linear -> BatchNorm1d."""
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=112, patch_size=9, num_classes=0, global_pool="", class_token=False, embed_dim=face_width,
        depth=1, num_heads=2, qkv_bias=False, act_layer=nn.ReLU6, norm_layer=partial(nn.LayerNorm, eps=1e-5))
    vit.feature = nn.Sequential(
        nn.Linear(144 * face_width, face_width, bias=False), nn.BatchNorm1d(face_width, eps=2e-5),
        nn.Linear(face_width, identity_dim, bias=False), nn.BatchNorm1d(identity_dim, eps=2e-5))
    return vit


class ReferenceBranch(nn.Module):
    """FaceCLIP's TextImageBranch (spec §2–§5) composed from open_clip, timm, torch.nn and the
    GroundingDINO layers; parameter names follow the released checkpoint."""

    def __init__(self, width, heads, act, face_width, identity_dim, ffn):
        super().__init__()
        tower = TextTransformer(context_length=77, vocab_size=49408, width=width, heads=heads, layers=2,
                                output_dim=width, act_layer=act, norm_layer=nn.LayerNorm)
        # The released branch holds the tower's parameters at its root.
        self.token_embedding = tower.token_embedding
        self.positional_embedding = tower.positional_embedding
        self.transformer = tower.transformer
        self.ln_final = tower.ln_final
        self.text_projection = tower.text_projection
        self.register_buffer("causal", tower.attn_mask, persistent=False)
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.logit_bias = nn.Parameter(torch.zeros([]))
        self.face_encoder = tiny_face_vit(face_width, identity_dim)
        self.face_encoder.mask_token = nn.Parameter(torch.zeros(1, 1, face_width))
        self.proj1 = nn.Linear(identity_dim, width)
        self.face_patch_proj = nn.Linear(face_width, width)
        self.face_pos_proj = nn.Linear(face_width, width)
        self.text_embed_proj = nn.Linear(width, width)
        self.text_pos_proj = nn.Linear(width, width)
        self.fuser = ReferenceFuser(width, ffn, 2)
        self.enc_output = nn.Linear(width, width)
        self.enc_output_norm = nn.LayerNorm(width)

    def forward(self, images, ids, id_mask):
        resized = F.interpolate(images, size=(112, 112), mode="bilinear", align_corners=False)
        patches = self.face_encoder.forward_features(resized)
        identity = self.face_encoder.feature(patches.flatten(1))
        face_token = self.proj1(F.normalize(identity, dim=-1))
        x = self.token_embedding(ids)
        x = torch.where(id_mask[..., None], face_token[:, None, :], x)
        x = x + self.positional_embedding
        hidden = self.ln_final(self.transformer(x, attn_mask=self.causal))
        pooled = hidden[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]
        l0 = self.text_embed_proj(hidden)
        pos_l = self.text_pos_proj(self.positional_embedding)[None].expand(ids.shape[0], -1, -1)
        v0 = self.face_patch_proj(patches)
        pos_v = self.face_pos_proj(self.face_encoder.pos_embed).expand(ids.shape[0], -1, -1)
        fused, _ = self.fuser(v0, l0, pos_v, pos_l)
        return fused, pooled

    def released_state(self, prefix):
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("fuser.")}
        # enc_output / enc_output_norm live under fuser. in the released file.
        state = {("fuser." + k if k.startswith("enc_output") else k): v for k, v in state.items()}
        state = {prefix + k: v.detach().bfloat16().contiguous() for k, v in state.items()}
        state.update({prefix + k: v for k, v in self.fuser.released_state("fuser.").items()})
        return state


def encoder_fixture() -> None:
    l_branch = ReferenceBranch(16, 2, QuickGELU, face_width=32, identity_dim=24, ffn=32).eval()
    g_branch = ReferenceBranch(24, 3, nn.GELU, face_width=32, identity_dim=24, ffn=32).eval()
    for branch in (l_branch, g_branch):
        randomise(branch)
        with torch.no_grad():
            branch.face_encoder.pos_embed.copy_((torch.randn_like(branch.face_encoder.pos_embed) * 0.5).bfloat16().float())
    prompts = ["a woman with short red hair, holding an id card", SDXL_NEGATIVE]
    present = [True, False]
    texts = [ID_PREFIX + p if f else p for p, f in zip(prompts, present)]
    ids = open_clip.tokenize(texts)
    prefix_positions = int((open_clip.tokenize([ID_PREFIX])[0] != 0).sum()) - 1
    id_mask = torch.zeros_like(ids, dtype=torch.bool)
    id_mask[:, :prefix_positions] = ids[:, :prefix_positions] == 1014
    id_mask &= torch.tensor(present)[:, None]
    assert id_mask.sum() == 1 and (ids[0] == 1014).sum() == 2, "one replaced id, one id left in the prompt"
    images = torch.rand(2, 3, 96, 80)
    images[1] = 0  # the negative branch sees an all-zero face
    with torch.no_grad():
        fused_l, _ = l_branch(images, ids, id_mask)
        fused_g, pooled = g_branch(images, ids, id_mask)
    state = l_branch.released_state("model.face_clip_l.")
    state.update(g_branch.released_state("model.face_clip_g."))
    torch.save(state, os.path.join(FUS, "encoder_weights.pt"))
    save_file(
        {"images": images, "input_ids": ids, "id_mask": id_mask.to(torch.uint8),
         "prompt_embeds": torch.cat([fused_l, fused_g], -1).contiguous(), "pooled": pooled.contiguous()},
        os.path.join(FUS, "encoder_io.safetensors"),
        metadata={"prompt_0": prompts[0], "prompt_1": prompts[1]},
    )


# --------------------------------------------------------------------------- .pt reader
def torch_archive_fixture() -> None:
    """Real torch.save archives covering the layouts the reader must handle."""
    base = torch.randn(4, 6)
    params = nn.Linear(6, 4)
    with torch.no_grad():
        params.weight.copy_(base)
    state = {
        "model.layer.weight_f32": base.clone(),
        "model.layer.weight_f16": base.half(),
        "model.layer.weight_bf16": base.bfloat16(),
        "model.layer.weight_f64": base.double(),
        "model.layer.transposed": base.t(),  # a non-contiguous view
        "model.layer.slice": base[1:3, 2:],  # an offset, strided view of the same storage
        "model.param": params.weight,  # an nn.Parameter
        "model.counter": torch.tensor(7, dtype=torch.int64),
        "model.scalar": torch.tensor(2.5),
        "nested": {"inner": {"value": base[0].clone()}},
        "epoch": 3,
    }
    torch.save(state, os.path.join(CORE, "layouts.pt"))
    save_file(
        {
            "base": base.contiguous(),
            "base_f16": base.half().float(),
            "base_bf16": base.bfloat16().float(),
            "base_f64": base.double().float(),
        },
        os.path.join(CORE, "layouts_expected.safetensors"),
    )


if __name__ == "__main__":
    os.makedirs(CORE, exist_ok=True)
    os.makedirs(ENC, exist_ok=True)
    os.makedirs(FUS, exist_ok=True)
    tokenizer_fixture()
    prompt_ids = open_clip.tokenize(
        ["Photo of a id person. A woman wearing a blue denim shirt and khaki pants.", "a photo of a dog"]
    ).tolist()
    # L-like tower: real vocabulary size and real token ids; QuickGELU; id token at position 4.
    text_tower_fixture("text_quickgelu", 49408, 32, 2, 3, QuickGELU, prompt_ids, [(0, 4)])
    # bigG-like tower: exact GELU; small vocabulary with the largest id as the end token.
    small = [[990, 5, 17, 44, 1000, 3] + [0] * 71, [990, 1000] + [0] * 75]
    text_tower_fixture("text_gelu", 1001, 48, 3, 2, nn.GELU, small + [small[0]], [(0, 2), (1, 1)])
    face_vit_fixture()
    torch_archive_fixture()
    attention_fixture()
    fuser_fixture()
    encoder_fixture()
    print("fixtures written to", CORE, "and", ENC)
