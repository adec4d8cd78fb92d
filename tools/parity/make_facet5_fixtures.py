"""Builds the FaceT5-FLUX text-side parity fixtures from the independent references.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_facet5_fixtures.py

Outputs:
* `faceclip-encoders/assets/t5_tiny_tokenizer.json`: a tiny T5 tokenizer: a SentencePiece
  Unigram model trained here on a few prompts exactly as T5's was set up (nmt_nfkc, `<pad>`=0,
  `</s>`=1, `<unk>`=2), converted by transformers' `convert_slow_tokenizer` — the structure of the
  released T5 `tokenizer.json` (Precompiled normaliser, Metaspace "▁", Unigram, `$A </s>`). Real
  checkpoints bring their own tokenizer.json; this one serves the tests and the random demo
  pipeline.
* `faceclip-encoders/tests/fixtures/t5_tokenizer_ids.json`: ids from transformers'
  `T5TokenizerFast(tokenizer_file=…)` with `padding="max_length", max_length=512`, as FLUX's
  `tokenizer_2` is called (checked equal to SentencePiece's own `T5Tokenizer`), and the
  untruncated length of an over-long prompt.
* `faceclip-fusion/tests/fixtures/facet5_weights.pt` + `facet5_io.safetensors`: a tiny
  `FaceT5FluxWrapper` checkpoint (`encoder_1.text_model.*` = transformers `CLIPTextModel`,
  `encoder_2.*` = FaceT5 with FAT5 T5 names) and its outputs. FaceT5 (spec §7.2) is composed
  here from timm's VisionTransformer (face ViT), transformers' `T5EncoderModel` (no mask, no
  scaling), transformers' GroundingDINO fusion and text-enhancer layers, and torch's
  `nn.TransformerEncoderLayer` (batch-second) fed batch-first face tokens exactly as the
  reference does — so its attention runs across the batch axis — with the face positions never
  passed. Each prompt is encoded alone (B = 1, what the reference script effectively does), and
  the pair once more jointly (B = 2) to pin the batch-axis behaviour. Computed in fp32 (the
  reference runs FaceT5 in bf16, spec §10 item 22).
"""

import io
import json
import os
import sys
import tempfile

import sentencepiece as spm
import torch
import torch.nn as nn
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5Tokenizer, T5TokenizerFast
from transformers.convert_slow_tokenizer import convert_slow_tokenizer

sys.path.insert(0, os.path.dirname(__file__))
from faceclip_fuser import ReferenceFuser, grounding_dino_config  # noqa: E402
from make_fixtures import hf_clip_tokenizer, randomise, tiny_face_vit  # noqa: E402
from make_t5_fixtures import fat5_name  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENC = os.path.join(ROOT, "faceclip-encoders", "tests", "fixtures")
ASSETS = os.path.join(ROOT, "faceclip-encoders", "assets")
FUS = os.path.join(ROOT, "faceclip-fusion", "tests", "fixtures")
TOKENIZER = os.path.join(ASSETS, "t5_tiny_tokenizer.json")

torch.manual_seed(20261127)

CORPUS = [
    "a photo of a woman with short red hair, smiling, studio lighting",
    "portrait of a man wearing glasses and a blue denim shirt on a rocky desert plateau",
    "digital painting, 3d render, CGI, cartoon, anime, unreal, stylized, overexposed, glossy skin",
    "wearing mask, looking away from the camera, wearing glasses, wearing sunglasses",
    "nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated",
    "ugly, disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers",
    "poorly drawn face, ugly eyes, imperfect eyes, deformed pupils, deformed iris, bad anatomy",
    "an astronaut in a white space suit holding a helmet, cinematic, golden hour, 35mm film",
    "the person as a medieval knight in shining armour, castle in the background, dramatic sky",
    "close-up of a child laughing in the rain, colourful umbrella, bokeh, high detail",
] * 4

PROMPTS = [
    "a photo of a woman with short red hair, smiling",
    "",
    "   multiple    spaces\tand\nnewlines   ",
    "UPPER case Words AND Numbers 12345 and 3.14",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \uff26\uff35\uff2c\uff2c width \ufb01ne",
    "emoji \U0001F600 and unseen zqxj words",
    "wearing glasses, wearing sunglasses, </s> literal end",
]

NEGATIVE = ("digital painting, 3d render, CGI, cartoon, anime, unreal, stylized, overexposed, glossy skin, "
            "wearing mask, looking away from the camera, wearing glasses, wearing sunglasses, "
            "nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated, "
            "ugly, disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers, "
            "poorly drawn face, ugly eyes, imperfect eyes, deformed pupils, deformed iris, bad anatomy")


def tokenizer_fixture() -> T5TokenizerFast:
    # A SentencePiece Unigram model trained like T5's (nmt_nfkc normalisation, <pad>=0, </s>=1,
    # <unk>=2, no <s>), converted to tokenizer.json by transformers' own T5 converter: the released
    # file's structure (Precompiled charsmap + whitespace handling, Metaspace, Unigram, `$A </s>`).
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=300, model_type="unigram",
        normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
        eos_piece="</s>", unk_piece="<unk>", hard_vocab_limit=False, num_threads=1, minloglevel=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spiece.model")
        with open(path, "wb") as f:
            f.write(model.getvalue())
        slow = T5Tokenizer(path, extra_ids=0, legacy=True)
        os.makedirs(ASSETS, exist_ok=True)
        convert_slow_tokenizer(slow).save(TOKENIZER)
    hf = T5TokenizerFast(tokenizer_file=TOKENIZER, extra_ids=0)
    ids = hf(PROMPTS, padding="max_length", max_length=512, truncation=True)["input_ids"]
    # The fast tokenizer (what FLUX runs) agrees with SentencePiece itself on every case.
    assert ids == slow(PROMPTS, padding="max_length", max_length=512, truncation=True)["input_ids"]
    too_long = " ".join(["wearing glasses"] * 300)
    out = {
        "vocab_size": hf.vocab_size,
        "cases": [{"prompt": p, "ids": i} for p, i in zip(PROMPTS, ids)],
        "too_long": {"prompt": too_long, "tokens": len(hf(too_long)["input_ids"])},
        "negative": {"prompt": NEGATIVE, "ids": hf(NEGATIVE, padding="max_length", max_length=512)["input_ids"]},
    }
    assert out["too_long"]["tokens"] > 512
    with open(os.path.join(ENC, "t5_tokenizer_ids.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print("T5 tokenizer: vocabulary", hf.vocab_size)
    return hf


def sinusoidal(length: int, d: int) -> torch.Tensor:
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(…) — FaceT5's text positions."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    div = torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(length, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)
    return pe[None].float()


class ReferenceFaceT5(nn.Module):
    """FaceT5Encoder (spec §7.2) at a tiny size; parameter names follow the released checkpoint."""

    def __init__(self, d, vocab, face_width, identity_dim, ffn, layers, length):
        super().__init__()
        self.face_encoder = tiny_face_vit(face_width, identity_dim)
        self.t5 = T5EncoderModel(T5Config(
            vocab_size=vocab, d_model=d, d_kv=8, num_heads=4, d_ff=48, num_layers=2, feed_forward_proj="gated-gelu",
            relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
            layer_norm_epsilon=1e-6))
        self.face_patch_proj = nn.Linear(face_width, d)
        self.face_pos_proj = nn.Linear(face_width, d)
        self.register_buffer("positional_embedding", sinusoidal(length, d))
        # GroundingDINO's fusion + text-enhancer layers, and torch's DETR layer on the image side.
        self.fuser = ReferenceFuser(d, ffn, layers)
        cfg = grounding_dino_config(d, ffn)
        self.image_layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.encoder_attention_heads, ffn, dropout=0.0, activation="relu",
                                       batch_first=False, norm_first=False)
            for _ in range(layers)])
        self.enc_output = nn.Linear(d, d)
        self.enc_output_norm = nn.LayerNorm(d)

    def forward(self, images, ids):
        resized = nn.functional.interpolate(images, size=(112, 112), mode="bilinear", align_corners=False)
        patches = self.face_encoder.forward_features(resized)
        _unused_identity = self.face_encoder.feature(patches.flatten(1))
        l = self.t5(input_ids=ids).last_hidden_state
        v = self.face_patch_proj(patches)
        pos_l = self.positional_embedding[:, : ids.shape[1]].expand(ids.shape[0], -1, -1)
        for fusion, text, image in zip(self.fuser.fusion, self.fuser.text, self.image_layers):
            (v, _), (l, _) = fusion(v, l)
            l, _ = text(l, attention_masks=torch.zeros(1, 1, 1, 1), position_embeddings=pos_l)
            v = image(v)  # batch-first data into a batch-second layer; `pos` never reaches it
        return l

    def released_state(self, prefix):
        state = {}
        for k, v in self.face_encoder.state_dict().items():
            state["face_encoder." + k] = v
        for k, v in self.t5.state_dict().items():
            if k != "encoder.embed_tokens.weight":
                state["t5_encoder." + fat5_name(k)] = v
        for name in ("face_patch_proj", "face_pos_proj"):
            for k, v in getattr(self, name).state_dict().items():
                state[f"{name}.{k}"] = v
        state["positional_embedding"] = self.positional_embedding
        for i, (f, t, img) in enumerate(zip(self.fuser.fusion, self.fuser.text, self.image_layers)):
            fused = self.fuser.released_state("fuser.")
            for k, v in fused.items():
                if f".fusion_layers.{i}." in k or f".text_layers.{i}." in k:
                    state[k] = v
            for k, v in img.state_dict().items():
                state[f"fuser.encoder.layers.{i}.{k}"] = v
        for name in ("enc_output", "enc_output_norm"):
            for k, v in getattr(self, name).state_dict().items():
                state[f"fuser.{name}.{k}"] = v
        return {prefix + k: v.detach().float().contiguous() for k, v in state.items()}


def facet5_fixture(t5_tokenizer) -> None:
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=2)).eval()
    randomise(clip)
    d = 32
    facet5 = ReferenceFaceT5(d, t5_tokenizer.vocab_size, face_width=32, identity_dim=24, ffn=64, layers=2,
                             length=512).eval()
    randomise(facet5)
    with torch.no_grad():
        facet5.positional_embedding.copy_(sinusoidal(512, d))
        facet5.face_encoder.pos_embed.mul_(5)
        for name, p in facet5.t5.named_parameters():
            if "layer_norm" in name:
                p.normal_(1.0, 0.1)
    prompts = ["a photo of a woman with short red hair, smiling", NEGATIVE]
    clip_tok = hf_clip_tokenizer()
    clip_ids = torch.tensor(clip_tok(prompts, padding="max_length", max_length=77, truncation=True)["input_ids"])
    t5_ids = torch.tensor(t5_tokenizer(prompts, padding="max_length", max_length=512, truncation=True)["input_ids"])
    images = torch.rand(2, 3, 96, 80)
    images[1] = 0  # the negative branch sees an all-zero face
    with torch.no_grad():
        pooled = clip(input_ids=clip_ids).pooler_output
        alone = torch.cat([facet5(images[b : b + 1], t5_ids[b : b + 1]) for b in range(2)])
        joint = facet5(images, t5_ids)
    assert (alone - joint).abs().max() > 1e-3, "batch-axis attention must make B = 2 differ from B = 1"
    state = {"encoder_1." + k: v.detach().contiguous() for k, v in clip.state_dict().items()}
    state.update(facet5.released_state("encoder_2."))
    torch.save(state, os.path.join(FUS, "facet5_weights.pt"))
    save_file({"images": images, "clip_ids": clip_ids, "t5_ids": t5_ids, "pooled": pooled.contiguous(),
               "embeds": alone.contiguous(), "embeds_joint": joint.contiguous()},
              os.path.join(FUS, "facet5_io.safetensors"),
              metadata={"prompt_0": prompts[0], "prompt_1": prompts[1]})
    print("facet5", tuple(alone.shape), float(alone.std()), "pooled", tuple(pooled.shape))


if __name__ == "__main__":
    facet5_fixture(tokenizer_fixture())
