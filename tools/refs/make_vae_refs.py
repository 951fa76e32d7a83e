#!/usr/bin/env python3
"""tools/refs/make_vae_refs.py - torch references for dc's VAE encoder (nn/vae.c).

There is no golden fixture for the Stable Diffusion VAE, so the reference
is written here in PyTorch from diffusers' structure (v0.25.1,
models/autoencoders/vae.py Encoder, unet_2d_blocks.DownEncoderBlock2D and
UNetMidBlock2D, resnet.ResnetBlock2D and Downsample2D, attention_processor
Attention with AttnProcessor), as nn.Modules whose state-dict names are the
real ones:

  conv_in 3x3
  per down block: layers_per_block x ResnetBlock2D (GroupNorm(eps 1e-6) +
    SiLU + conv3x3, twice; 1x1 conv_shortcut when the width changes),
    then, except on the last block, Downsample2D: pad (0,1,0,1), 3x3 stride 2
  mid block: resnet, single-head self-attention (GroupNorm first, residual),
    resnet
  conv_norm_out (GroupNorm + SiLU), conv_out 3x3 -> 2 * latent channels
  quant_conv 1x1; mean | logvar = chunk(2); logvar clamped to [-30, 20];
  std = exp(0.5 * logvar)   (DiagonalGaussianDistribution)

Weights are random everywhere (conv/linear N(0, 1/fan_in), biases
N(0, 0.05^2), norm weights 1 + N(0, 0.1^2), norm biases N(0, 0.05^2); no
zero init), stored as float32; the reference runs them upcast to float64
and, to measure how far plain float32 lands, once more in float32. Each
case is a folder as users download it, config.json +
diffusion_pytorch_model.safetensors, holding decoder tensors too (the
converter must skip them):

  new_names      diffusers >= 0.15 attention names (to_q/to_k/to_v/to_out.0),
                 3 blocks (2 downsamplers), 2 layers per block, 4 groups,
                 a batch of two 16x16 images
  old_names      the names real SD VAE files on the hub still use
                 (query/key/value/proj_attn), 2 blocks, 1 layer per block,
                 8 groups, 3 latent channels, a 24x32 (non-square) image,
                 and quant_conv biases that drive two logvar channels past
                 the clamp (to +20 and -30)
  compvis_names  new_names' weights under the original CompVis names
                 (first_stage_model.encoder.down.0.block.0..., attention as
                 1x1 convs), one .safetensors file without config.json:
                 tools/refs/prepare_vae.py converts it with --config
                 new_names/config.json and compares with new_names' outputs

Every run also checks, against tests/fixtures/key_lists/sd_vae.json
(the real full-size SD VAE's names and shapes), that (1) this torch module
built with the SD config has exactly the real encoder.* and quant_conv.*
names and shapes, and (2) tools/convert/convert_vae.py accepts the real key list,
with new and with old attention names and with no config.json (config
inferred from the shapes) and under CompVis names, and yields every
canonical name dc__vae_build looks up; and (3) that the converter refuses,
naming them, unknown, missing, mis-shaped and duplicated tensors and configs
nn/vae.c does not run. `--check` runs only these checks (a few seconds).

Needs Debian's python3-torch. usage: make_vae_refs.py [--check] [OUTDIR] [FIXTURES]
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
from safetensors_np import write_safetensors  # noqa: E402
import convert_vae  # noqa: E402


# ---------------------------------------------------------------- the model

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))      # dropout is 0
        s = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (s + h) / 1.0                       # output_scale_factor = 1


class Downsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # downsample_padding = 0: pad right and bottom


class DownEncoderBlock2D(nn.Module):
    def __init__(self, cin, cout, layers, groups, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if downsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class Attention(nn.Module):
    """diffusers' Attention as UNetMidBlock2D builds it for the VAE: one head of
    width C (heads = C // attention_head_dim = 1), group norm first, residual."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).view(n, c, h * w).transpose(1, 2)     # [n, hw, c]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
        o = self.to_out[0](a).transpose(1, 2).reshape(n, c, h, w)
        return (o + x) / 1.0                                           # rescale_output_factor = 1


class UNetMidBlock2D(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(c, groups)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups), ResnetBlock2D(c, c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, L = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            DownEncoderBlock2D(ch[max(i - 1, 0)], ch[i], L, g, i < len(ch) - 1) for i in range(len(ch))])
        self.mid_block = UNetMidBlock2D(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VaeEncoder(nn.Module):
    """AutoencoderKL's encode(): encoder + quant_conv -> (mean, std)."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg["latent_channels"], 2 * cfg["latent_channels"], 1)

    def forward(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))


def randomize(model, g):
    """Every parameter random (nothing zero), float32 values."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


# ---------------------------------------------------------------- file layouts

OLD_ATTN = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def old_attention_names(sd):
    """The pre-0.15 attention names that real SD VAE files still carry."""
    out = {}
    for k, v in sd.items():
        for new, old in OLD_ATTN.items():
            if f".attentions.0.{new}." in k:
                k = k.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
        out[k] = v
    return out


def compvis_names(sd):
    """The original latent-diffusion names (ldm/modules/diffusionmodules/model.py),
    as in single-file SD checkpoints: attention q/k/v/proj_out are 1x1 convs."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("encoder.down_blocks."):
            i = parts[2]
            if parts[3] == "resnets":
                leaf = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                k = f"encoder.down.{i}.block.{parts[4]}.{leaf}"
            else:                                   # downsamplers.0.conv.*
                k = f"encoder.down.{i}.downsample.conv.{parts[-1]}"
        elif k.startswith("encoder.mid_block.resnets."):
            k = f"encoder.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
        elif k.startswith("encoder.mid_block.attentions.0."):
            leaf = ".".join(parts[4:])
            ren = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
            mod = leaf.rsplit(".", 1)[0]
            k = f"encoder.mid.attn_1.{ren[mod]}.{parts[-1]}"
            if v.ndim == 2:
                v = v.reshape(*v.shape, 1, 1)
        elif k.startswith("encoder.conv_norm_out."):
            k = "encoder.norm_out." + parts[-1]
        out["first_stage_model." + k] = v
    return out


def decoder_tensors(cfg, g, old):
    """A handful of decoder tensors with real names and shapes: the converter
    must skip them (dc needs the encoder only)."""
    C, L, c0 = cfg["block_out_channels"][-1], cfg["latent_channels"], cfg["block_out_channels"][0]
    q = "query" if old else "to_q"
    shapes = {"post_quant_conv.weight": (L, L, 1, 1), "post_quant_conv.bias": (L,),
              "decoder.conv_in.weight": (C, L, 3, 3), "decoder.conv_in.bias": (C,),
              f"decoder.mid_block.attentions.0.{q}.weight": (C, C),
              "decoder.up_blocks.0.resnets.0.norm1.weight": (C,),
              "decoder.conv_norm_out.weight": (c0,), "decoder.conv_out.weight": (3, c0, 3, 3)}
    return {k: torch.randn(s, generator=g).numpy().astype(np.float32) for k, s in shapes.items()}


def diffusers_config(cfg):
    nb = len(cfg["block_out_channels"])
    return {"_class_name": "AutoencoderKL", "_diffusers_version": "0.25.1", "act_fn": "silu",
            "block_out_channels": cfg["block_out_channels"],
            "down_block_types": ["DownEncoderBlock2D"] * nb, "up_block_types": ["UpDecoderBlock2D"] * nb,
            "in_channels": cfg["in_channels"], "out_channels": cfg["in_channels"],
            "latent_channels": cfg["latent_channels"], "layers_per_block": cfg["layers_per_block"],
            "norm_num_groups": cfg["norm_num_groups"], "sample_size": cfg["sample_size"],
            "scaling_factor": cfg["scaling_factor"], "force_upcast": True}


# ---------------------------------------------------------------- cases

CASES = {
    "new_names": dict(cfg=dict(in_channels=3, latent_channels=4, block_out_channels=[8, 16, 16], layers_per_block=2,
                               norm_num_groups=4, sample_size=16, scaling_factor=0.18215),
                      image=(2, 3, 16, 16), old=False, clamp=False),
    "old_names": dict(cfg=dict(in_channels=3, latent_channels=3, block_out_channels=[16, 24], layers_per_block=1,
                               norm_num_groups=8, sample_size=32, scaling_factor=0.13025),
                      image=(1, 3, 24, 32), old=True, clamp=True),
}


def make_case(out, name, spec):
    cfg = spec["cfg"]
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    model = VaeEncoder(cfg)
    randomize(model, g)
    if spec["clamp"]:
        # two logvar channels past the clamp: quant_conv's logvar rows
        # (channels L.. 2L-1) get +45 and -55 on their bias
        L = cfg["latent_channels"]
        with torch.no_grad():
            model.quant_conv.bias[L] += 45.0
            model.quant_conv.bias[L + 1] -= 55.0
    image = torch.rand(spec["image"], generator=g) * 2 - 1                     # in [-1, 1]
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    with torch.no_grad():
        mean64, std64 = model.double()(image.double())
        mean32, std32 = model.float()(image)
    dev_mean = float((mean32.double() - mean64).abs().max())
    dev_std = float(((std32.double() - std64).abs() / std64.abs()).max())
    files = dict(sd)
    if spec["old"]:
        files = old_attention_names(files)
    files.update(decoder_tensors(cfg, g, spec["old"]))
    write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), files)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(diffusers_config(cfg), f, indent=2)
    np.save(os.path.join(d, "image.npy"), image.numpy().astype(np.float32))
    np.save(os.path.join(d, "mean.npy"), mean64.numpy().astype(np.float32))
    np.save(os.path.join(d, "std.npy"), std64.numpy().astype(np.float32))
    case = {"component": "vae encoder", "reference": "tools/refs/make_vae_refs.py (diffusers 0.25.1 structure)",
            "config": cfg, "image": list(spec["image"]),
            "fp32_vs_fp64": {"mean_max_abs": dev_mean, "std_max_rel": dev_std},
            "max_abs_mean": float(mean64.abs().max()),
            "std_range": [float(std64.min()), float(std64.max())]}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
    print(f"{name}: mean {list(mean64.shape)} max |mean| {case['max_abs_mean']:.3g}, std in "
          f"[{case['std_range'][0]:.3g}, {case['std_range'][1]:.3g}]; fp32 vs fp64: mean {dev_mean:.3g} abs, "
          f"std {dev_std:.3g} rel")
    if name == "new_names":
        cv = os.path.join(out, "compvis_names")
        os.makedirs(cv, exist_ok=True)
        write_safetensors(os.path.join(cv, "vae.safetensors"), compvis_names(sd))
        print("compvis_names: new_names' weights under CompVis names")


# ---------------------------------------------------------------- key-list checks

SD_VAE_CFG = dict(in_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                  norm_num_groups=32, sample_size=512, scaling_factor=0.18215)


def check_key_list(fixtures):
    path = os.path.join(fixtures, "key_lists", "sd_vae.json")
    if not os.path.exists(path):
        print(f"key-list check skipped: {path} not present")
        return
    with open(path) as f:
        kl = json.load(f)
    real = {k: tuple(s) for k, s in kl["keys"]}
    kcfg = kl["config"]
    for key in ("block_out_channels", "layers_per_block", "norm_num_groups", "latent_channels", "in_channels",
                "scaling_factor"):
        assert kcfg[key] == SD_VAE_CFG[key], f"key list config {key} = {kcfg[key]}, SD_VAE_CFG has {SD_VAE_CFG[key]}"

    # (1) the torch reference, built with the SD config, has the real names and shapes
    model = VaeEncoder(SD_VAE_CFG)   # 34M parameters, default init: a second or two
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = {k: s for k, s in real.items() if k.startswith(("encoder.", "quant_conv."))}
    missing = sorted(set(want) - set(ours))
    extra = sorted(set(ours) - set(want))
    bad = sorted(k for k in set(ours) & set(want) if ours[k] != want[k])
    assert not missing and not extra and not bad, f"torch reference vs key list: missing {missing[:5]}, " \
        f"extra {extra[:5]}, shapes {[(k, ours[k], want[k]) for k in bad[:5]]}"
    print(f"key list: the torch reference has all {len(want)} encoder/quant_conv tensors of the real SD VAE, "
          "same shapes")

    # (2) the converter on the real key list (zero-strided arrays: no memory),
    # new and old attention names, config.json given and inferred
    def fake(shape):
        return np.broadcast_to(np.float32(0), shape)

    expect = {"vae." + k: s for k, s in want.items()}
    for label, names, cfg in (("new names, config.json", real, kcfg),
                              ("old names, config.json", old_attention_names(real), kcfg),
                              ("old names, no config", old_attention_names(real), None)):
        tensors = {k: fake(s) for k, s in names.items()}
        meta, it = convert_vae.vae_encoder_from_tensors(tensors, cfg, origin="sd_vae.json", prefix="vae.", quiet=True)
        got = {}
        for item in it:
            got[item[0]] = tuple(item[1].shape)
        assert got == expect, f"converter ({label}): names or shapes differ from the key list: " \
            f"{sorted(set(got) ^ set(expect))[:5]}"
        assert meta["vae.block_out_channels"] == SD_VAE_CFG["block_out_channels"], meta
        assert meta["vae.norm_num_groups"] == 32 and meta["vae.layers_per_block"] == 2, meta
        assert meta["vae.latent_channels"] == 4 and meta["vae.in_channels"] == 3, meta
        assert abs(meta["vae.scaling_factor"] - 0.18215) < 1e-9, meta
        print(f"key list: the converter maps the real SD VAE ({label}) to {len(got)} canonical tensors, "
              "decoder skipped")
    # CompVis names of the same model
    sd = {k: fake(s) for k, s in want.items()}
    tensors = compvis_names(sd)
    meta, it = convert_vae.vae_encoder_from_tensors(tensors, None, origin="sd_vae.json (CompVis)", prefix="vae.",
                                                    quiet=True)
    got = {item[0]: tuple(item[1].shape) for item in it}
    assert got == expect, f"converter (CompVis names): {sorted(set(got) ^ set(expect))[:5]}"
    print(f"key list: the converter maps the same model under CompVis names to {len(got)} canonical tensors")

    # (3) what it must refuse, by name
    def refused(tensors, cfg, *words):
        try:
            convert_vae.vae_encoder_from_tensors(tensors, cfg, origin="sd_vae.json", quiet=True)
        except SystemExit as e:
            msg = str(e)
            assert all(w in msg for w in words), f"converter message {msg!r} lacks {words}"
            return
        raise AssertionError(f"converter accepted a bad file (expected an error naming {words})")

    base = {k: fake(s) for k, s in real.items()}
    refused({**base, "encoder.mid_block.attentions.0.extra.weight": fake((4,))}, kcfg,
            "encoder.mid_block.attentions.0.extra.weight")
    refused({**base, "text_model.embeddings.position_ids": fake((1, 77))}, kcfg,
            "text_model.embeddings.position_ids")
    refused({k: v for k, v in base.items() if k != "encoder.conv_out.bias"}, kcfg, "missing", "encoder.conv_out.bias")
    refused({**base, "encoder.conv_in.weight": fake((128, 4, 3, 3))}, kcfg, "encoder.conv_in.weight", "[128, 4, 3, 3]")
    refused({**{k: v for k, v in base.items() if ".to_q." not in k},
             **{k.replace(".to_q.", ".query."): v for k, v in base.items() if ".to_q." in k},
             "encoder.mid_block.attentions.0.to_q.weight": fake((512, 512))}, kcfg, "same tensor")
    refused(base, {**kcfg, "block_out_channels": [128, 256, 512], "down_block_types": ["DownEncoderBlock2D"] * 3},
            "encoder.down_blocks.3")
    refused(base, {**kcfg, "mid_block_add_attention": False}, "mid_block_add_attention")
    print("converter: refuses unknown, missing, mis-shaped and duplicated tensors and unsupported configs, by name")


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    out = args[0] if args else os.path.join(ROOT, "tests", "data", "vae")
    fixtures = args[1] if len(args) > 1 else os.path.join(ROOT, "tests", "fixtures")
    torch.set_num_threads(1)
    if "--check" not in sys.argv:
        for name, spec in CASES.items():
            make_case(out, name, spec)
    check_key_list(fixtures)


if __name__ == "__main__":
    main()
