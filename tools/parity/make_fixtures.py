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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORE = os.path.join(ROOT, "faceclip-core", "tests", "fixtures")
ENC = os.path.join(ROOT, "faceclip-encoders", "tests", "fixtures")
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

    # HF CLIPTokenizer built from the same BPE list (the layout of openai/clip-vit-large-patch14).
    from transformers import CLIPTokenizer

    tmp = os.path.join(ROOT, "target", "hf_clip_tok")
    os.makedirs(tmp, exist_ok=True)
    from open_clip.tokenizer import SimpleTokenizer

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
    hf_prompts = [p for p in prompts if "<start_of_text>" not in p] + ["a <|endoftext|> literal <|startoftext|>"]
    hf_ids = hf(hf_prompts, padding="max_length", max_length=77, truncation=True)["input_ids"]
    shutil.rmtree(tmp)
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
    print("fixtures written to", CORE, "and", ENC)
