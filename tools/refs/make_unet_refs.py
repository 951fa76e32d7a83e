#!/usr/bin/env python3
"""tools/refs/make_unet_refs.py - torch references for dc's UNet (nn/unet.c).

The golden fixture (tests/fixtures/unet_sd1, made with diffusers 0.25.1)
covers one SD 1.x-like config. The configs it does not show are checked
against this reference, written here in PyTorch from diffusers' structure
(v0.25.1: unet_2d_condition.UNet2DConditionModel, unet_2d_blocks.
CrossAttnDownBlock2D / DownBlock2D / UNetMidBlock2DCrossAttn /
CrossAttnUpBlock2D / UpBlock2D, resnet.ResnetBlock2D, downsampling.
Downsample2D, upsampling.Upsample2D, transformer_2d.Transformer2DModel,
attention.BasicTransformerBlock and FeedForward, activations.GEGLU,
attention_processor.Attention, embeddings.TimestepEmbedding and
get_timestep_embedding), as nn.Modules whose state-dict names are the real
ones. Points it reproduces on purpose:

  - heads: `num_attention_heads or attention_head_dim` is the NUMBER of
    heads; a transformer of C channels has head dim C // heads and width
    heads * (C // heads), which differs from C when heads does not divide C
  - use_linear_projection: proj_in/out are Linears applied after / before
    the NCHW <-> tokens permute; otherwise 1x1 convs applied before / after
  - up block i: layers_per_block[-1 - i] + 1 resnets, skip widths from
    diffusers' res_skip_channels rule, heads[-1 - i]
  - time_proj: sin/cos with flip_sin_to_cos and downscale_freq_shift =
    freq_shift, computed in float64 here (diffusers uses float32)

Weights are random everywhere (conv/linear N(0, 1/fan_in), biases
N(0, 0.05^2), norm weights 1 + N(0, 0.1^2), norm biases N(0, 0.05^2); no
zero init), stored as float32; the reference runs them upcast to float64.
Each case is a folder as users download it (config.json +
diffusion_pytorch_model.safetensors) plus sample.npy, timesteps.npy,
encoder_hidden_states.npy and out_sample.npy, like the fixture:

  sd2_linear   SD 2.x style: use_linear_projection, upcast_attention,
               attention_head_dim [1, 2, 2] on widths [8, 16, 16] (head dim
               8), cross_attention_dim 12, 4 groups, 3 blocks (2
               downsamplers), a 16x8 latent, batch 2, fractional timesteps
  odd_config   heads that do not divide the width (3 heads on 16 channels:
               width 15), DownBlock2D first and UpBlock2D last,
               layers_per_block [1, 2], transformer_layers_per_block 2,
               flip_sin_to_cos false with freq_shift 1, center_input_sample,
               mid_block_scale_factor 1.5, time_embedding_dim 24, norm_eps
               1e-6, 3 in / 5 out channels, an 8x12 latent, batch 3

Every run first checks tools/convert/convert_unet.py against the real full-size key
lists (tests/fixtures/key_lists/sd15_unet.json and sd21_unet.json):
the names and shapes its config logic implies equal the listed ones, the
parameter counts match summary.json (859,520,964 and 865,910,724), and this
torch module built with those configs (on the meta device: nothing is
allocated) has exactly the same names and shapes; and that this module, given
the golden fixture's weights and inputs, reproduces its output (diffusers
run in float64) to 1e-6. `--check` runs only these checks.

Needs Debian's python3-torch. usage: make_unet_refs.py [--check] [OUTDIR] [FIXTURES]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
import convert_unet  # noqa: E402
from safetensors_np import write_safetensors  # noqa: E402

DEVICE = None   # "meta" while building full-size modules for the name check


def Linear(i, o, bias=True):
    return nn.Linear(i, o, bias=bias, device=DEVICE, dtype=torch.float64)


def Conv(i, o, k, stride=1):
    return nn.Conv2d(i, o, k, stride=stride, padding=k // 2, device=DEVICE, dtype=torch.float64)


def GroupNorm(g, c, eps):
    return nn.GroupNorm(g, c, eps=eps, device=DEVICE, dtype=torch.float64)


def LayerNorm(d):
    return nn.LayerNorm(d, eps=1e-5, device=DEVICE, dtype=torch.float64)


# ---------------------------------------------------------------- the model

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, scale=1.0):
        super().__init__()
        self.norm1 = GroupNorm(groups, cin, eps)
        self.conv1 = Conv(cin, cout, 3)
        self.time_emb_proj = Linear(temb, cout)
        self.norm2 = GroupNorm(groups, cout, eps)
        self.conv2 = Conv(cout, cout, 3)
        self.conv_shortcut = Conv(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))   # dropout 0
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (skip + h) / self.scale


class Attention(nn.Module):
    def __init__(self, qdim, kvdim, heads, dh):
        super().__init__()
        inner = heads * dh
        self.heads = heads
        self.to_q = Linear(qdim, inner, bias=False)
        self.to_k = Linear(kvdim, inner, bias=False)
        self.to_v = Linear(kvdim, inner, bias=False)
        self.to_out = nn.ModuleList([Linear(inner, qdim), nn.Dropout(0.0)])

    def forward(self, x, ctx):
        b, lq, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        dh = q.shape[-1] // self.heads
        q, k, v = (t.view(b, -1, self.heads, dh).transpose(1, 2) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) * dh ** -0.5, dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, lq, self.heads * dh)
        return self.to_out[0](o)


class GEGLU(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.proj = Linear(d, 2 * inner)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(d, 4 * d), nn.Dropout(0.0), Linear(4 * d, d)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, d, heads, dh, cross):
        super().__init__()
        self.norm1 = LayerNorm(d)
        self.attn1 = Attention(d, d, heads, dh)
        self.norm2 = LayerNorm(d)
        self.attn2 = Attention(d, cross, heads, dh)
        self.norm3 = LayerNorm(d)
        self.ff = FeedForward(d)

    def forward(self, x, ctx):
        n = self.norm1(x)
        x = self.attn1(n, n) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, heads, dh, c, layers, cross, groups, linear):
        super().__init__()
        inner = heads * dh
        self.linear = linear
        self.norm = GroupNorm(groups, c, 1e-6)
        self.proj_in = Linear(c, inner) if linear else Conv(c, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dh, cross)
                                                 for _ in range(layers)])
        self.proj_out = Linear(inner, c) if linear else Conv(inner, c, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        res = x
        x = self.norm(x)
        if not self.linear:                       # conv on NCHW, then permute
            x = self.proj_in(x)
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, x.shape[1])
        else:                                     # permute, then linear
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
            x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        if not self.linear:
            x = x.reshape(b, h, w, x.shape[-1]).permute(0, 3, 1, 2)
            x = self.proj_out(x)
        else:
            x = self.proj_out(x)
            x = x.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return x + res


class Resample(nn.Module):
    """Downsample2D (3x3 stride 2, padding 1) or Upsample2D (nearest 2x, then 3x3)."""
    def __init__(self, c, down):
        super().__init__()
        self.down = down
        self.conv = Conv(c, c, 3, stride=2 if down else 1)

    def forward(self, x):
        return self.conv(x if self.down else F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    """CrossAttnDownBlock2D / DownBlock2D / CrossAttnUpBlock2D / UpBlock2D."""
    def __init__(self, resnets, attentions, resample):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attn = bool(attentions)
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        self.resamplers = None
        if resample is not None:   # registered under its diffusers name only
            setattr(self, "downsamplers" if resample.down else "upsamplers", nn.ModuleList([resample]))
            self.resamplers = "downsamplers" if resample.down else "upsamplers"

    def resample(self, x):
        return getattr(self, self.resamplers)[0](x) if self.resamplers else x


class MidBlock(nn.Module):
    def __init__(self, resnets, attention):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList([attention])


class TimestepEmbedding(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.linear_1 = Linear(i, o)
        self.linear_2 = Linear(o, o)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_embedding(t, dim, flip, shift, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float64) / (half - shift)
    emb = t[:, None].to(torch.float64) * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class UNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = convert_unet.normalise_config(config)
        self.cfg = cfg
        ch, B = cfg["block_out_channels"], len(cfg["block_out_channels"])
        G, eps, Td, X = cfg["norm_num_groups"], cfg["norm_eps"], cfg["time_embed_dim"], cfg["cross_attention_dim"]
        heads, layers, tl, lin = cfg["heads"], cfg["layers_per_block"], cfg["transformer_layers_per_block"], \
            cfg["use_linear_projection"]
        self.conv_in = Conv(cfg["in_channels"], ch[0], 3)
        self.time_embedding = TimestepEmbedding(ch[0], Td)

        def tf(c, h, nl):
            return Transformer2DModel(h, c // h, c, nl, X, G, lin)

        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i in range(B):
            cin, out = out, ch[i]
            cross = cfg["down_block_types"][i] == "CrossAttnDownBlock2D"
            res = [ResnetBlock2D(cin if j == 0 else out, out, Td, G, eps) for j in range(layers[i])]
            att = [tf(out, heads[i], tl[i]) for _ in range(layers[i])] if cross else []
            self.down_blocks.append(Block(res, att, Resample(out, True) if i < B - 1 else None))
        C, s = ch[-1], cfg["mid_block_scale_factor"]
        self.mid_block = MidBlock([ResnetBlock2D(C, C, Td, G, eps, s), ResnetBlock2D(C, C, Td, G, eps, s)],
                                  tf(C, heads[-1], tl[-1]))
        rch, rh, rl, rtl = ch[::-1], heads[::-1], layers[::-1], tl[::-1]
        self.up_blocks = nn.ModuleList()
        out = rch[0]
        for i in range(B):
            prev, out, cin = out, rch[i], rch[min(i + 1, B - 1)]
            cross = cfg["up_block_types"][i] == "CrossAttnUpBlock2D"
            n = rl[i] + 1
            res = [ResnetBlock2D((prev if j == 0 else out) + (cin if j == n - 1 else out), out, Td, G, eps)
                   for j in range(n)]
            att = [tf(out, rh[i], rtl[i]) for _ in range(n)] if cross else []
            self.up_blocks.append(Block(res, att, Resample(out, False) if i < B - 1 else None))
        self.conv_norm_out = GroupNorm(G, ch[0], eps)
        self.conv_out = Conv(ch[0], cfg["out_channels"], 3)

    def forward(self, sample, t, ctx):
        cfg = self.cfg
        if cfg["center_input_sample"]:
            sample = 2 * sample - 1.0
        emb = self.time_embedding(timestep_embedding(t, cfg["block_out_channels"][0], cfg["flip_sin_to_cos"],
                                                     cfg["freq_shift"]).to(sample.dtype))
        x = self.conv_in(sample)
        skips = [x]
        for blk in self.down_blocks:
            for j, rn in enumerate(blk.resnets):
                x = rn(x, emb)
                if blk.attn:
                    x = blk.attentions[j](x, ctx)
                skips.append(x)
            if blk.resamplers:
                x = blk.resample(x)
                skips.append(x)
        mid = self.mid_block
        x = mid.resnets[1](mid.attentions[0](mid.resnets[0](x, emb), ctx), emb)
        for blk in self.up_blocks:
            for j, rn in enumerate(blk.resnets):
                x = rn(torch.cat([x, skips.pop()], dim=1), emb)
                if blk.attn:
                    x = blk.attentions[j](x, ctx)
            x = blk.resample(x)
        assert not skips
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---------------------------------------------------------------- checks

def check_key_lists(fixtures):
    """The converter's config logic (prepare_unet.py, no torch) and this
    module against the real full-size key lists."""
    global DEVICE
    from prepare_unet import converter_against_key_lists, read_key_list
    lines = converter_against_key_lists(fixtures)
    for name in ("sd15_unet", "sd21_unet"):
        d, real = read_key_list(fixtures, name)
        DEVICE = "meta"
        try:
            mod = {k: tuple(v.shape) for k, v in UNet(d["config"]).state_dict().items()}
        finally:
            DEVICE = None
        if mod != real:
            raise SystemExit(f"{name}: the torch module's names/shapes differ: "
                             f"{sorted(set(mod) ^ set(real))[:5]}")
        print(f"{name}: the torch module's names and shapes: ok")
    return lines


def check_fixture(fixtures):
    """This module against diffusers itself: the golden fixture's weights and
    inputs through it must give the fixture's float64 output."""
    d = os.path.join(fixtures, "unet_sd1")
    if not os.path.isdir(d):
        print(f"make_unet_refs: {d} absent, fixture check skipped")
        return None
    from safetensors_np import open_safetensors
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        model = UNet(json.load(f))
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64))
             for k, v in open_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    x, t, ctx = (torch.from_numpy(np.load(os.path.join(d, f + ".npy")).astype(np.float64))
                 for f in ("sample", "timesteps", "encoder_hidden_states"))
    with torch.no_grad():
        out = model(x, t, ctx).numpy()
    err = float(np.abs(out - np.load(os.path.join(d, "out_sample.npy"))).max())
    line = f"unet_sd1 fixture through this torch module: max abs err {err:.3g}"
    print(line)
    if not err < 1e-6:
        raise SystemExit(line + ": the reference does not reproduce diffusers")
    return line


# ---------------------------------------------------------------- cases

CASES = {
    "sd2_linear": dict(
        config=dict(_class_name="UNet2DConditionModel", sample_size=16, in_channels=4, out_channels=4,
                    block_out_channels=[8, 16, 16], layers_per_block=1,
                    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                    attention_head_dim=[1, 2, 2], use_linear_projection=True, upcast_attention=True,
                    cross_attention_dim=12, norm_num_groups=4, norm_eps=1e-5, flip_sin_to_cos=True,
                    freq_shift=0, act_fn="silu", mid_block_scale_factor=1, num_attention_heads=None),
        seed=11, n=2, h=16, w=8, ctx=5, t=[3.0, 901.5]),
    "odd_config": dict(
        config=dict(_class_name="UNet2DConditionModel", sample_size=8, in_channels=3, out_channels=5,
                    block_out_channels=[8, 16], layers_per_block=[1, 2], transformer_layers_per_block=2,
                    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
                    attention_head_dim=[3, 3], use_linear_projection=False, upcast_attention=False,
                    cross_attention_dim=10, norm_num_groups=4, norm_eps=1e-6, flip_sin_to_cos=False,
                    freq_shift=1, center_input_sample=True, mid_block_scale_factor=1.5,
                    time_embedding_dim=24, act_fn="silu"),
        seed=12, n=3, h=8, w=12, ctx=4, t=[0.0, 250.0, 999.0]),
}


def randomise(model, gen):
    """Random weights of every parameter (no zero init), rounded to float32."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("bias"):
                v = torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.05
            elif p.ndim == 1:                    # norm weights
                v = 1 + torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.1
            else:
                fan_in = int(np.prod(p.shape[1:]))
                v = torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
            p.copy_(v.float().double())


def make_case(outdir, name, spec):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(spec["seed"])
    model = UNet(spec["config"])
    randomise(model, gen)
    cfg = model.cfg
    sample = torch.randn(spec["n"], cfg["in_channels"], spec["h"], spec["w"], generator=gen).float()
    ctx = torch.randn(spec["n"], spec["ctx"], cfg["cross_attention_dim"], generator=gen).float()
    t = torch.tensor(spec["t"], dtype=torch.float32)
    with torch.no_grad():
        out = model(sample.double(), t.double(), ctx.double())
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), state)
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        json.dump(spec["config"], f, indent=2)
    np.save(os.path.join(d, "sample.npy"), sample.numpy())
    np.save(os.path.join(d, "timesteps.npy"), t.numpy())
    np.save(os.path.join(d, "encoder_hidden_states.npy"), ctx.numpy())
    np.save(os.path.join(d, "out_sample.npy"), out.float().numpy())
    params = sum(v.size for v in state.values())
    print(f"{name}: {params} parameters, out {list(out.shape)}, max |out| {out.abs().max().item():.3g}")


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    outdir = args[0] if args else os.path.join(ROOT, "tests", "data", "unet")
    fixtures = args[1] if len(args) > 1 else os.path.join(ROOT, "tests", "fixtures")
    check_key_lists(fixtures)
    check_fixture(fixtures)
    if "--check" in sys.argv:
        return
    for name, spec in CASES.items():
        make_case(outdir, name, spec)


if __name__ == "__main__":
    main()
