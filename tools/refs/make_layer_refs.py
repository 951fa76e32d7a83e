#!/usr/bin/env python3
"""tools/refs/make_layer_refs.py - reference outputs for dc's layer tests.

Each layer is computed here independently, in float64 numpy, from seeded
float32 inputs, and written as .npy files under tests/data/layers/ (checked
in, so `make test` needs no Python beyond the converter's). Where Debian's
torch is importable, every numpy reference is first checked against torch's
own layer (conv2d with asymmetric padding, group_norm, layer_norm, gelu,
softmax attention), so the references follow PyTorch's semantics and not
just our reading of them.

usage: make_layer_refs.py [OUTDIR]     (default tests/data/layers)
"""
import math
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the references stand alone; torch only double-checks
    torch = None

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "layers")
rng = np.random.default_rng(20261127)
checked = []


def save(name, **arrays):
    for k, v in arrays.items():
        v = np.asarray(v)
        v = v.astype(np.int64) if v.dtype.kind in "iu" else v.astype(np.float32)
        np.save(os.path.join(OUT, f"{name}_{k}.npy"), np.ascontiguousarray(v))


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def torch_check(name, ours, theirs, tol=1e-5):
    err = float(np.max(np.abs(np.asarray(ours, np.float64) - theirs.double().numpy())))
    assert err < tol, f"{name}: numpy reference and torch differ by {err}"
    checked.append(name)


# ---- linear ----
def linear():
    x, w, b = randn(5, 7), randn(3, 7), randn(3)
    y = x.astype(np.float64) @ w.T.astype(np.float64) + b
    if torch:
        torch_check("linear", y, F.linear(torch.tensor(x).double(), torch.tensor(w).double(), torch.tensor(b).double()))
    save("linear", x=x, w=w, b=b, y=y)


# ---- conv2d ----
def conv_ref(x, w, b, stride, pt, pb, pl, pr):
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, co, ho, wo))
    for ky in range(kh):
        for kx in range(kw):
            patch = x[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx].astype(np.float64))
    return y + b.astype(np.float64)[None, :, None, None]


CONVS = {
    #         n cin  h   w cout kh kw s  pt pb pl pr
    "a": (2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1),     # the UNet's 3x3 'same' conv
    "b": (1, 4, 8, 8, 5, 3, 3, 2, 0, 1, 0, 1),     # the SD VAE downsampler
    "c": (2, 6, 5, 5, 3, 1, 1, 1, 0, 0, 0, 0),     # 1x1 projection: plain sgemm
    "d": (1, 2, 9, 11, 3, 5, 3, 3, 2, 1, 0, 2),    # odd kernel, stride and padding
    "e": (2, 8, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1),  # several im2col tiles per sample
    "f": (1, 3, 16, 16, 7, 2, 2, 2, 0, 0, 0, 0),   # DiT's patch embedding (patch 2)
}


def conv():
    for name, p in CONVS.items():
        n, cin, h, w, cout, kh, kw, s, pt, pb, pl, pr = p
        x, wt, b = randn(n, cin, h, w), randn(cout, cin, kh, kw, scale=1 / math.sqrt(cin * kh * kw)), randn(cout)
        y = conv_ref(x, wt, b, s, pt, pb, pl, pr)
        if torch:
            tx = F.pad(torch.tensor(x).double(), (pl, pr, pt, pb))
            torch_check(f"conv_{name}", y, F.conv2d(tx, torch.tensor(wt).double(), torch.tensor(b).double(), stride=s))
        save(f"conv_{name}", x=x, w=wt, b=b, y=y, p=np.array(p))


# ---- norms ----
def group_norm():
    n, c, hw, g, eps = 2, 8, 15, 4, 1e-6
    x = randn(n, c, hw, scale=3.0) + 1.5
    gamma, beta = 1 + randn(c, scale=0.1), randn(c, scale=0.1)
    xg = x.astype(np.float64).reshape(n, g, -1)
    mean, var = xg.mean(-1, keepdims=True), xg.var(-1, keepdims=True)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(n, c, hw) * gamma[None, :, None] + beta[None, :, None]
    if torch:
        torch_check("group_norm", y, F.group_norm(torch.tensor(x).double(), g, torch.tensor(gamma).double(),
                                                   torch.tensor(beta).double(), eps))
    silu = y / (1 + np.exp(-y))
    save("group_norm", x=x, gamma=gamma, beta=beta, y=y, y_silu=silu, p=np.array([n, c, hw, g]))


def layer_norm():
    rows, c, eps = 4, 33, 1e-5
    x = randn(rows, c, scale=2.0) - 0.7
    gamma, beta = 1 + randn(c, scale=0.1), randn(c, scale=0.1)
    x64 = x.astype(np.float64)
    norm = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + eps)
    if torch:
        torch_check("layer_norm", norm * gamma + beta,
                    F.layer_norm(torch.tensor(x).double(), (c,), torch.tensor(gamma).double(), torch.tensor(beta).double(), eps))
    save("layer_norm", x=x, gamma=gamma, beta=beta, y=norm * gamma + beta, y_plain=norm)


# ---- activations, GEGLU, softmax ----
def erf(v):
    return np.vectorize(math.erf)(v)


def activations():
    x = np.linspace(-9, 9, 1001).astype(np.float32)
    x64 = x.astype(np.float64)
    silu = x64 / (1 + np.exp(-x64))
    gelu = 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))
    gelu_tanh = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    quick = x64 / (1 + np.exp(-1.702 * x64))
    if torch:
        t = torch.tensor(x).double()
        torch_check("silu", silu, F.silu(t))
        torch_check("gelu", gelu, F.gelu(t))
        torch_check("gelu_tanh", gelu_tanh, F.gelu(t, approximate="tanh"))
        torch_check("quick_gelu", quick, t * torch.sigmoid(1.702 * t))
    save("act", x=x, silu=silu, gelu=gelu, gelu_tanh=gelu_tanh, quick_gelu=quick)

    rows, d = 3, 10
    xg = randn(rows, 2 * d, scale=2.0)
    a, gate = xg[:, :d].astype(np.float64), xg[:, d:].astype(np.float64)
    save("geglu", x=xg, y=a * 0.5 * gate * (1 + erf(gate / math.sqrt(2))))

    xs = randn(3, 17, scale=20.0)  # large logits: max subtraction matters
    e = np.exp(xs.astype(np.float64) - xs.max(-1, keepdims=True))
    save("softmax", x=xs, y=e / e.sum(-1, keepdims=True))


# ---- attention ----
def attention(name, nb, heads, lq, lk, dh, causal):
    q, k, v = randn(nb, lq, heads * dh), randn(nb, lk, heads * dh), randn(nb, lk, heads * dh)
    scale = 1 / math.sqrt(dh)
    o = np.zeros((nb, lq, heads * dh))
    for b in range(nb):
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            s = q[b, :, sl].astype(np.float64) @ k[b, :, sl].astype(np.float64).T * scale
            if causal:
                s = np.where(np.tril(np.ones((lq, lk), bool)), s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            o[b, :, sl] = (s / s.sum(-1, keepdims=True)) @ v[b, :, sl].astype(np.float64)
    if torch:
        tq = torch.tensor(q).double().view(nb, lq, heads, dh).transpose(1, 2)
        tk = torch.tensor(k).double().view(nb, lk, heads, dh).transpose(1, 2)
        tv = torch.tensor(v).double().view(nb, lk, heads, dh).transpose(1, 2)
        s = tq @ tk.transpose(-1, -2) * scale
        if causal:
            s = s.masked_fill(~torch.ones(lq, lk, dtype=torch.bool).tril(), float("-inf"))
        torch_check(f"attn_{name}", o, (s.softmax(-1) @ tv).transpose(1, 2).reshape(nb, lq, heads * dh))
    save(f"attn_{name}", q=q, k=k, v=v, o=o, p=np.array([nb, heads, lq, lk, dh, int(causal)]))


# ---- shape ops, timestep embedding ----
def shape_ops():
    x = randn(2, 3, 4, 5)
    save("upsample", x=x, y=x.repeat(2, axis=2).repeat(2, axis=3))
    a, b = randn(2, 3, 6), randn(2, 5, 6)
    save("concat", a=a, b=b, y=np.concatenate([a, b], axis=1))


def timestep():
    t = np.array([0, 1, 17.5, 500, 999], np.float32)
    for name, dim, flip, shift in [("sd", 32, 1, 0.0), ("sd_shift1", 32, 1, 1.0), ("sincos", 32, 0, 1.0), ("odd", 33, 1, 0.0)]:
        half = dim // 2
        freqs = np.exp(-math.log(10000) * np.arange(half) / (half - shift))
        ang = t.astype(np.float64)[:, None] * freqs[None]
        emb = np.concatenate([np.cos(ang), np.sin(ang)] if flip else [np.sin(ang), np.cos(ang)], axis=1)
        if dim % 2:
            emb = np.pad(emb, ((0, 0), (0, 1)))
        save(f"temb_{name}", t=t, y=emb, p=np.array([dim, flip, int(shift)]))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    linear()
    conv()
    group_norm()
    layer_norm()
    activations()
    attention("self", 2, 3, 70, 70, 8, False)
    attention("causal", 2, 3, 70, 70, 8, True)
    attention("cross", 2, 3, 70, 13, 8, False)
    shape_ops()
    timestep()
    print(f"wrote references to {os.path.normpath(OUT)}; torch cross-checked: "
          + (", ".join(checked) if checked else "no (torch not importable)"))
