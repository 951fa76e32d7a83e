#!/usr/bin/env python3
"""tools/refs/make_dit_refs.py - torch references for DiT sizes the golden
fixture does not show (patch 4 and 8, head counts that are not powers of
two, a 32x32 input with 256 tokens, no learned sigma, mlp_ratio 2.5).

A small DiT is written here in PyTorch from the paper's description
(patchify, sin-cos position table, timestep MLP, label table with a null
row, adaLN-Zero blocks, tanh-GELU MLP, final adaLN layer, unpatchify),
with random weights everywhere (no zero init), run in float64, and saved
as the original code saves checkpoints: a plain state dict in a .pt file
(torch.save) or a .safetensors file, with a config.json of DiT's
constructor arguments. tests/test_dit.c converts each with tools/convert/convert.py
and compares dc's output.

Needs Debian's python3-torch. usage: make_dit_refs.py [OUTDIR]
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
from safetensors_np import write_safetensors  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "dit")

CASES = {
    # name: constructor arguments, how the weights are stored
    "p4_odd_heads": (dict(input_size=16, patch_size=4, in_channels=3, hidden_size=60, depth=2, num_heads=5,
                          mlp_ratio=4.0, num_classes=7, learn_sigma=True), "pt"),
    "p8_wide": (dict(input_size=16, patch_size=8, in_channels=4, hidden_size=96, depth=1, num_heads=3,
                     mlp_ratio=2.5, num_classes=5, learn_sigma=False), "safetensors"),
    "s32_p2": (dict(input_size=32, patch_size=2, in_channels=4, hidden_size=32, depth=1, num_heads=2,
                    mlp_ratio=4.0, num_classes=3, learn_sigma=True), "pt"),
    # the 512 px configuration's latent size (64x64), at a tiny width
    "s64_p4": (dict(input_size=64, patch_size=4, in_channels=4, hidden_size=24, depth=1, num_heads=3,
                    mlp_ratio=2.0, num_classes=4, learn_sigma=True), "safetensors"),
}


def make_state(cfg, g):
    D, p, C = cfg["hidden_size"], cfg["patch_size"], cfg["in_channels"]
    T = (cfg["input_size"] // p) ** 2
    Dm = int(D * cfg["mlp_ratio"])
    Co = 2 * C if cfg["learn_sigma"] else C

    def w(*shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return torch.randn(*shape, generator=g) / math.sqrt(fan_in)

    def b(n):
        return torch.randn(n, generator=g) * 0.05

    sd = {"pos_embed": torch.randn(1, T, D, generator=g) * 0.5,
          "x_embedder.proj.weight": w(D, C, p, p), "x_embedder.proj.bias": b(D),
          "t_embedder.mlp.0.weight": w(D, 256), "t_embedder.mlp.0.bias": b(D),
          "t_embedder.mlp.2.weight": w(D, D), "t_embedder.mlp.2.bias": b(D),
          "y_embedder.embedding_table.weight": torch.randn(cfg["num_classes"] + 1, D, generator=g) * 0.5}
    for i in range(cfg["depth"]):
        sd.update({f"blocks.{i}.attn.qkv.weight": w(3 * D, D), f"blocks.{i}.attn.qkv.bias": b(3 * D),
                   f"blocks.{i}.attn.proj.weight": w(D, D), f"blocks.{i}.attn.proj.bias": b(D),
                   f"blocks.{i}.mlp.fc1.weight": w(Dm, D), f"blocks.{i}.mlp.fc1.bias": b(Dm),
                   f"blocks.{i}.mlp.fc2.weight": w(D, Dm), f"blocks.{i}.mlp.fc2.bias": b(D),
                   f"blocks.{i}.adaLN_modulation.1.weight": w(6 * D, D),
                   f"blocks.{i}.adaLN_modulation.1.bias": b(6 * D)})
    sd.update({"final_layer.adaLN_modulation.1.weight": w(2 * D, D), "final_layer.adaLN_modulation.1.bias": b(2 * D),
               "final_layer.linear.weight": w(p * p * Co, D), "final_layer.linear.bias": b(p * p * Co)})
    return sd


def dit_forward(sd, cfg, x, t, y):
    """The DiT forward pass, float64, straight from the paper's structure."""
    F = torch.nn.functional
    D, p, H = cfg["hidden_size"], cfg["patch_size"], cfg["num_heads"]
    n, S = x.shape[0], cfg["input_size"]
    g = S // p
    Co = 2 * cfg["in_channels"] if cfg["learn_sigma"] else cfg["in_channels"]
    tok = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=p)
    tok = tok.flatten(2).transpose(1, 2) + sd["pos_embed"]
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=t.dtype) / half)
    args = t[:, None] * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    temb = F.linear(F.silu(F.linear(temb, sd["t_embedder.mlp.0.weight"], sd["t_embedder.mlp.0.bias"])),
                    sd["t_embedder.mlp.2.weight"], sd["t_embedder.mlp.2.bias"])
    c = F.silu(temb + sd["y_embedder.embedding_table.weight"][y])

    def ln_mod(v, shift, scale):
        return F.layer_norm(v, (D,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]

    for i in range(cfg["depth"]):
        k = f"blocks.{i}."
        mods = F.linear(c, sd[k + "adaLN_modulation.1.weight"], sd[k + "adaLN_modulation.1.bias"]).chunk(6, dim=1)
        h = ln_mod(tok, mods[0], mods[1])
        qkv = F.linear(h, sd[k + "attn.qkv.weight"], sd[k + "attn.qkv.bias"])
        qkv = qkv.reshape(n, -1, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, kk, v = qkv[0], qkv[1], qkv[2]
        att = (q @ kk.transpose(-2, -1) * (D // H) ** -0.5).softmax(-1) @ v
        att = att.transpose(1, 2).reshape(n, -1, D)
        tok = tok + mods[2][:, None] * F.linear(att, sd[k + "attn.proj.weight"], sd[k + "attn.proj.bias"])
        h = ln_mod(tok, mods[3], mods[4])
        h = F.gelu(F.linear(h, sd[k + "mlp.fc1.weight"], sd[k + "mlp.fc1.bias"]), approximate="tanh")
        tok = tok + mods[5][:, None] * F.linear(h, sd[k + "mlp.fc2.weight"], sd[k + "mlp.fc2.bias"])
    shift, scale = F.linear(c, sd["final_layer.adaLN_modulation.1.weight"],
                            sd["final_layer.adaLN_modulation.1.bias"]).chunk(2, dim=1)
    out = F.linear(ln_mod(tok, shift, scale), sd["final_layer.linear.weight"], sd["final_layer.linear.bias"])
    out = out.reshape(n, g, g, p, p, Co)
    return torch.einsum("nhwpqc->nchpwq", out).reshape(n, Co, S, S)


def main():
    for name, (cfg, fmt) in CASES.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        g = torch.Generator().manual_seed(sum(map(ord, name)))
        sd = make_state(cfg, g)
        n, S, C = 3, cfg["input_size"], cfg["in_channels"]
        x = torch.randn(n, C, S, S, generator=g)
        t = torch.tensor([3.0, 411.5, 998.0])
        y = torch.tensor([0, cfg["num_classes"] - 1, cfg["num_classes"]])  # last = null class
        with torch.no_grad():
            out = dit_forward({k: v.double() for k, v in sd.items()}, cfg, x.double(), t.double(), y)
        if fmt == "pt":
            torch.save(sd, os.path.join(d, f"DiT-test-{S}.pt"))
        else:
            write_safetensors(os.path.join(d, "model.safetensors"), {k: v.numpy() for k, v in sd.items()})
        cfg_file = dict(cfg, class_dropout_prob=0.1)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_file, f, indent=1)
        np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(d, "t.npy"), t.numpy().astype(np.float32))
        np.save(os.path.join(d, "y.npy"), y.numpy().astype(np.int64))
        np.save(os.path.join(d, "out.npy"), out.numpy().astype(np.float32))
        print(f"{name}: {fmt}, output {tuple(out.shape)}")


if __name__ == "__main__":
    main()
