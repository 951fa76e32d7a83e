#!/usr/bin/env python3
"""tools/refs/make_clip_refs.py - torch references for CLIP text-encoder configs
the golden fixture (tests/fixtures/clip_text_quickgelu: quick_gelu,
width 64, 4 heads, 3 layers) does not show: exact-GELU activation (SD 2.x),
head counts that are not powers of two, other widths, one layer (where the
penultimate hidden state is the embeddings), sequences shorter than
max_positions, 77-token prompts padded the SD 1.x way (with EOS) and the
SD 2.x way (with 0), a prompt that fills all 77 positions, an fp16 source
file and a source that still holds text_model.embeddings.position_ids.

The model is written here in PyTorch following transformers'
CLIPTextTransformer (embeddings -> pre-LN encoder layers with causal
self-attention and an MLP -> final_layer_norm; pooled = final state at
argmax(ids)), with random weights, run in float64 on the stored weights
(upcast), and saved as transformers saves it: config.json +
model.safetensors with the HF names. Before writing, the same code is run
on the golden fixture (when present) and must reproduce it, so these
references are checked against transformers itself.

Each case folder (tests/data/clip/<case>/) holds config.json,
model.safetensors, input_ids.npy (int64 [n, L]) and last_hidden_state.npy,
penultimate_hidden_state.npy (hidden_states[-2], no final norm),
penultimate_normed.npy (final_layer_norm(hidden_states[-2]), diffusers'
clip_skip=1) and pooler_output.npy (float32). tools/refs/prepare_clip.py
converts them; tests/test_clip.c compares.

Needs Debian's python3-torch. usage: make_clip_refs.py [OUTDIR] [FIXTURES]
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
from safetensors_np import open_safetensors, write_safetensors  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "clip")
FIXTURES = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures")

# name: (config, seq_len, padding ("eos" | "zero"), source dtype, keep position_ids)
CASES = {
    # SD 2.x style: exact GELU, 3 heads of 16, padded with 0, 77 tokens, one prompt fills all 77
    "gelu_pad0": (dict(hidden_size=48, intermediate_size=112, num_attention_heads=3, num_hidden_layers=3,
                       max_position_embeddings=77, vocab_size=400, hidden_act="gelu", layer_norm_eps=1e-5),
                  77, "zero", "F32", True),
    # odd head count (5 heads of 8), width 40, quick_gelu, 12 of 16 positions, fp16 source file
    "odd_heads_f16": (dict(hidden_size=40, intermediate_size=72, num_attention_heads=5, num_hidden_layers=2,
                           max_position_embeddings=16, vocab_size=300, hidden_act="quick_gelu",
                           layer_norm_eps=1e-5), 12, "eos", "F16", False),
    # one layer (hidden_states[-2] = the embeddings), one head of 32, SD 1.x padding to 77, eps 1e-6
    "one_layer": (dict(hidden_size=32, intermediate_size=64, num_attention_heads=1, num_hidden_layers=1,
                       max_position_embeddings=77, vocab_size=200, hidden_act="gelu", layer_norm_eps=1e-6),
                  77, "eos", "F32", False),
}


# ---------------------------------------------------------------- the model

def clip_text_forward(sd, cfg, ids):
    """transformers' CLIPTextTransformer.forward, float64. Returns
    (hidden_states list [embeddings, layer 0 out, ...], last_hidden_state, pooled)."""
    F = torch.nn.functional
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = D // H, cfg["layer_norm_eps"]
    n, L = ids.shape
    act = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}[cfg["hidden_act"]]
    p = "text_model."
    x = sd[p + "embeddings.token_embedding.weight"][ids] + \
        sd[p + "embeddings.position_embedding.weight"][torch.arange(L)][None]
    # _create_4d_causal_attention_mask: -inf (the dtype's min) above the diagonal
    mask = torch.full((L, L), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)
    states = [x]
    for i in range(cfg["num_hidden_layers"]):
        k = f"{p}encoder.layers.{i}."

        def lin(v, name):
            return F.linear(v, sd[k + name + ".weight"], sd[k + name + ".bias"])

        res = x
        h = F.layer_norm(x, (D,), sd[k + "layer_norm1.weight"], sd[k + "layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj") * dh ** -0.5       # CLIPAttention scales q before the product
        kk, v = lin(h, "self_attn.k_proj"), lin(h, "self_attn.v_proj")

        def heads(t):
            return t.view(n, L, H, dh).transpose(1, 2)        # [n, H, L, dh]

        w = heads(q) @ heads(kk).transpose(-1, -2) + mask
        a = (w.softmax(-1) @ heads(v)).transpose(1, 2).reshape(n, L, D)
        x = res + lin(a, "self_attn.out_proj")
        res = x
        h = F.layer_norm(x, (D,), sd[k + "layer_norm2.weight"], sd[k + "layer_norm2.bias"], eps)
        x = res + lin(act(lin(h, "mlp.fc1")), "mlp.fc2")
        states.append(x)

    def final(t):
        return F.layer_norm(t, (D,), sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"], eps)

    last = final(x)
    pooled = last[torch.arange(n), ids.to(torch.int).argmax(dim=-1)]  # eos_token_id == 2 branch
    return states, last, pooled, final


def outputs(sd, cfg, ids):
    sd = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    with torch.no_grad():
        states, last, pooled, final = clip_text_forward(sd, cfg, ids)
        pen = states[-2]
        return {"last_hidden_state": last, "penultimate_hidden_state": pen,
                "penultimate_normed": final(pen), "pooler_output": pooled}


# ---------------------------------------------------------------- checks and cases

def check_against_fixture():
    """Our forward on the golden fixture must reproduce transformers' outputs."""
    d = os.path.join(FIXTURES, "clip_text_quickgelu")
    if not os.path.isdir(d):
        print("no golden fixture: the torch model is not cross-checked")
        return
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in open_safetensors(os.path.join(d, "model.safetensors")).items()}
    ids = torch.from_numpy(np.load(os.path.join(d, "input_ids.npy")))
    out = outputs(sd, cfg, ids)
    for name in ("last_hidden_state", "penultimate_hidden_state", "pooler_output"):
        want = np.load(os.path.join(d, name + ".npy"))
        err = np.abs(out[name].numpy() - want).max()
        print(f"fixture check: {name} max abs err {err:.3g}")
        if not err < 1e-6:   # the fixture is float64 cast to float32: only rounding may differ
            sys.exit(f"make_clip_refs: the torch model disagrees with the fixture on {name} ({err})")


def make_state(cfg, g):
    """Random weights with the fixture's conventions: linear N(0, 1/fan_in),
    biases N(0, 0.05^2), norm weights 1 + N(0, 0.1^2), embeddings N(0, 0.5^2)."""
    D, I, V, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]

    def w(o, i):
        return torch.randn(o, i, generator=g) / math.sqrt(i)

    def b(o):
        return torch.randn(o, generator=g) * 0.05

    def ln(o):
        return 1 + torch.randn(o, generator=g) * 0.1

    p = "text_model."
    sd = {p + "embeddings.token_embedding.weight": torch.randn(V, D, generator=g) * 0.5,
          p + "embeddings.position_embedding.weight": torch.randn(P, D, generator=g) * 0.5}
    for i in range(cfg["num_hidden_layers"]):
        k = f"{p}encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            sd[k + f"self_attn.{proj}.weight"], sd[k + f"self_attn.{proj}.bias"] = w(D, D), b(D)
        sd[k + "layer_norm1.weight"], sd[k + "layer_norm1.bias"] = ln(D), b(D)
        sd[k + "mlp.fc1.weight"], sd[k + "mlp.fc1.bias"] = w(I, D), b(I)
        sd[k + "mlp.fc2.weight"], sd[k + "mlp.fc2.bias"] = w(D, I), b(D)
        sd[k + "layer_norm2.weight"], sd[k + "layer_norm2.bias"] = ln(D), b(D)
    sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = ln(D), b(D)
    return sd


def make_ids(cfg, L, padding, g):
    """Three prompts as the SD tokenizers lay them out: BOS, words, EOS, then
    padding (EOS for SD 1.x, 0 for SD 2.x). BOS and EOS are the two largest
    ids, as in CLIP's vocabulary (49406, 49407), so argmax finds the EOS.
    The last prompt fills every position (a truncated prompt: EOS at L-1)."""
    V = cfg["vocab_size"]
    bos, eos = V - 2, V - 1
    ids = []
    for words in (3, L // 2, L - 2):
        w = torch.randint(1, V - 2, (words,), generator=g).tolist()
        row = [bos] + w + [eos]
        row += [eos if padding == "eos" else 0] * (L - len(row))
        ids.append(row)
    return torch.tensor(ids, dtype=torch.int64)


def main():
    check_against_fixture()
    total = 0
    for name, (cfg, L, padding, src_dtype, keep_pos_ids) in CASES.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        g = torch.Generator().manual_seed(sum(map(ord, name)))
        sd = make_state(cfg, g)
        if src_dtype == "F16":
            # the file holds fp16 (as many SD downloads do): the reference runs on those values
            sd = {k: v.half() for k, v in sd.items()}
        ids = make_ids(cfg, L, padding, g)
        out = outputs(sd, cfg, ids)
        tensors = {k: v.numpy() for k, v in sd.items()}
        if keep_pos_ids:
            # older transformers saved this buffer; the converter must skip it
            tensors["text_model.embeddings.position_ids"] = np.arange(
                cfg["max_position_embeddings"], dtype=np.int64)[None]
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
        config = dict(architectures=["CLIPTextModel"], model_type="clip_text_model", bos_token_id=0,
                      eos_token_id=2, pad_token_id=1, projection_dim=cfg["hidden_size"],
                      torch_dtype="float16" if src_dtype == "F16" else "float32", **cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        np.save(os.path.join(d, "input_ids.npy"), ids.numpy())
        for k, v in out.items():
            np.save(os.path.join(d, k + ".npy"), v.numpy().astype(np.float32))
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total += size
        print(f"{name}: ids {tuple(ids.shape)}, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
