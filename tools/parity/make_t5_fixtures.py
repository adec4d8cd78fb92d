"""Builds the T5 encoder parity fixture of faceclip-encoders from transformers.

Run by hand (never by CI) from the repository root, in the venv of requirements.txt:

    ../pyref/bin/python tools/parity/make_t5_fixtures.py

Reference: transformers' `T5EncoderModel` with a tiny T5 v1.1 configuration (gated GELU-tanh
feed-forward, 32 relative-position buckets, max distance 128, RMSNorm eps 1e-6), every weight
randomised, run without an attention mask as FLUX and FaceT5 run it. Inputs: two rows of 160
token ids (long enough for the logarithmic buckets beyond distance 128), with EOS (1) and padding
(0). Saved twice: with Hugging Face's key names and renamed to FaceCLIP's FAT5 names (spec §8:
`SelfAttention.q/k/v/o` → `self_attention.Wq/Wk/Wv/o`, `DenseReluDense.*` → `ff_layer.act.wi_0/1`,
`ff_layer.wo`).
"""

import os

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "faceclip-encoders", "tests", "fixtures")

torch.manual_seed(20261126)


def fat5_name(key):
    key = key.removeprefix("encoder.")
    key = key.replace("layer.0.SelfAttention.relative_attention_bias",
                      "self_attention_layer.self_attention.pe_encoding.relative_attention_bias")
    for a, b in [("q", "Wq"), ("k", "Wk"), ("v", "Wv"), ("o", "o")]:
        key = key.replace(f"layer.0.SelfAttention.{a}.", f"self_attention_layer.self_attention.{b}.")
    key = key.replace("layer.0.layer_norm", "self_attention_layer.layer_norm")
    key = key.replace("layer.1.DenseReluDense.wi_", "ff_layer.act.wi_")
    key = key.replace("layer.1.DenseReluDense.wo", "ff_layer.wo")
    key = key.replace("layer.1.layer_norm", "ff_layer.layer_norm")
    return "embed_tokens.weight" if key == "shared.weight" else key


def main():
    config = T5Config(vocab_size=120, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2,
                      feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, dropout_rate=0.0, layer_norm_epsilon=1e-6)
    model = T5EncoderModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.normal_(1.0, 0.1)
            elif p.dim() == 2 and "relative_attention_bias" not in name and "shared" not in name:
                p.uniform_(-1.5 / p.shape[1] ** 0.5, 1.5 / p.shape[1] ** 0.5)
            else:
                p.normal_(0.0, 0.5)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(state, os.path.join(OUT, "t5_hf.safetensors"))
    save_file({fat5_name(k): v for k, v in state.items()}, os.path.join(OUT, "t5_fat5.safetensors"))
    ids = torch.randint(2, 120, (2, 160))
    ids[0, 40] = 1
    ids[0, 41:] = 0
    ids[1, -1] = 1
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state
    save_file({"ids": ids, "hidden": hidden.contiguous()}, os.path.join(OUT, "t5_io.safetensors"))
    print("t5", tuple(hidden.shape), float(hidden.std()))


if __name__ == "__main__":
    main()
