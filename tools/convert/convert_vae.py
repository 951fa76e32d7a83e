#!/usr/bin/env python3
"""tools/convert/convert_vae.py - the Stable Diffusion VAE encoder (AutoencoderKL's
encoder + quant_conv) into dc's canonical names, for nn/vae.c.

dc needs only the encoder half of the VAE: an image becomes the latent mean
that the classifier noises and denoises. Real files hold more and name it
in three ways, all mapped here to one canonical set:

  diffusers >= 0.15   encoder.*, quant_conv.*, attention as
                      mid_block.attentions.0.{to_q,to_k,to_v,to_out.0}
  diffusers < 0.15    the same with attentions.0.{query,key,value,proj_attn}
                      (what the SD VAE files on the hub still carry)
  CompVis (ldm)       encoder.down.{i}.block.{j}, .nin_shortcut,
                      .downsample.conv, mid.block_{1,2}, mid.attn_1.{norm,q,
                      k,v,proj_out} (1x1 convs), norm_out; optionally under
                      "first_stage_model." (single-file SD checkpoints)

Canonical names are prefix ("vae.") + the diffusers >= 0.15 names; attention
projections are stored [C, C] whatever their source shape ([C, C, 1, 1] in
CompVis files). decoder.* and post_quant_conv.* are skipped; any other name
is an error that lists it. Every expected tensor must be present with the
shape the config implies.

Metadata (prefix + key): in_channels, latent_channels, block_out_channels
(int array), layers_per_block, norm_num_groups, scaling_factor (float; the
classifier multiplies the latent mean by it, the encoder does not),
sample_size. The config comes from config.json (a diffusers vae folder, or
beside a .safetensors file, or --config-vae); without one it is inferred from
the tensor shapes, assuming SD's 32 groups and scaling 0.18215 (with a note).

    vae_encoder(folder_or_file, prefix="vae.", config=None) -> (meta, iterator of (name, array))
    vae_encoder_from_tensors(tensors, config, origin, prefix="vae.") -> the same, from {name: array}

From the command line: convert.py SRC --family vae [--config-vae JSON], SRC
a diffusers vae folder, a pipeline folder (uses vae/), or a .safetensors
file. Needs numpy only.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import component_source, open_safetensors  # noqa: E402

# AutoencoderKL's constructor defaults (diffusers 0.25.1), for keys a config.json leaves out
DEFAULTS = dict(in_channels=3, latent_channels=4, block_out_channels=[64], layers_per_block=1,
                norm_num_groups=32, sample_size=32, scaling_factor=0.18215)
# what no config can tell from the shapes: SD's values (SD 1.x/2.x, sd-vae-ft-*)
ASSUMED = dict(norm_num_groups=32, scaling_factor=0.18215, sample_size=512)

OLD_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
CV_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
CV_LEAF = {"nin_shortcut": "conv_shortcut"}

# The older names, each a pattern and its diffusers >= 0.15 name as a function of the match
RENAMES = [
    # diffusers < 0.15 attention names
    (r"encoder\.mid_block\.attentions\.0\.(query|key|value|proj_attn)\.(weight|bias)",
     lambda m: f"encoder.mid_block.attentions.0.{OLD_ATTN[m[1]]}.{m[2]}"),
    # CompVis names
    (r"encoder\.down\.(\d+)\.block\.(\d+)\.(norm1|conv1|norm2|conv2|nin_shortcut)\.(weight|bias)",
     lambda m: f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{CV_LEAF.get(m[3], m[3])}.{m[4]}"),
    (r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)",
     lambda m: f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"),
    (r"encoder\.mid\.block_([12])\.(norm1|conv1|norm2|conv2)\.(weight|bias)",
     lambda m: f"encoder.mid_block.resnets.{int(m[1]) - 1}.{m[2]}.{m[3]}"),
    (r"encoder\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)",
     lambda m: f"encoder.mid_block.attentions.0.{CV_ATTN[m[1]]}.{m[2]}"),
    (r"encoder\.norm_out\.(weight|bias)", lambda m: f"encoder.conv_norm_out.{m[1]}"),
]


def note(msg):
    print(f"convert_vae: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- names

def canonical_name(name):
    """The diffusers >= 0.15 name of one encoder tensor (no prefix), "" for a
    tensor dc skips (decoder), None for a name this VAE does not have."""
    if name.startswith(("decoder.", "post_quant_conv.")):
        return ""
    if name.startswith("quant_conv."):
        return name if name in ("quant_conv.weight", "quant_conv.bias") else None
    if not name.startswith("encoder."):
        return None
    for pattern, rename in RENAMES:
        m = re.fullmatch(pattern, name)
        if m:
            return rename(m)
    return name  # already diffusers >= 0.15, or unknown: expected_shapes decides


def expected_shapes(cfg):
    """{canonical name: shape} of the encoder + quant_conv that cfg describes, in forward order."""
    ch, L, cin, z = cfg["block_out_channels"], cfg["layers_per_block"], cfg["in_channels"], cfg["latent_channels"]
    out = {}

    def conv(name, co, ci, k):
        out[name + ".weight"] = (co, ci, k, k)
        out[name + ".bias"] = (co,)

    def norm(name, c):
        out[name + ".weight"] = (c,)
        out[name + ".bias"] = (c,)

    def resnet(name, ci, co):
        norm(name + ".norm1", ci)
        conv(name + ".conv1", co, ci, 3)
        norm(name + ".norm2", co)
        conv(name + ".conv2", co, co, 3)
        if ci != co:
            conv(name + ".conv_shortcut", co, ci, 1)

    conv("encoder.conv_in", ch[0], cin, 3)
    for i, co in enumerate(ch):
        for j in range(L):
            resnet(f"encoder.down_blocks.{i}.resnets.{j}", ch[max(i - 1, 0)] if j == 0 else co, co)
        if i < len(ch) - 1:
            conv(f"encoder.down_blocks.{i}.downsamplers.0.conv", co, co, 3)
    C = ch[-1]
    resnet("encoder.mid_block.resnets.0", C, C)
    norm("encoder.mid_block.attentions.0.group_norm", C)
    for p in ("to_q", "to_k", "to_v", "to_out.0"):
        out[f"encoder.mid_block.attentions.0.{p}.weight"] = (C, C)
        out[f"encoder.mid_block.attentions.0.{p}.bias"] = (C,)
    resnet("encoder.mid_block.resnets.1", C, C)
    norm("encoder.conv_norm_out", C)
    conv("encoder.conv_out", 2 * z, C, 3)
    conv("quant_conv", 2 * z, 2 * z, 1)
    return out


# ---------------------------------------------------------------- config

def infer_config(t, origin, quiet):
    """The architecture from t = {canonical name: shape}: what a file without
    config.json says about itself."""
    need = ["encoder.conv_in.weight", "encoder.conv_out.weight"]
    for n in need:
        if n not in t:
            raise SystemExit(f"convert_vae: {origin}: no {n}: not a VAE encoder?")
    blocks = sorted({int(m.group(1)) for n in t for m in [re.match(r"encoder\.down_blocks\.(\d+)\.", n)] if m})
    if blocks != list(range(len(blocks))) or not blocks:
        raise SystemExit(f"convert_vae: {origin}: down blocks {blocks} are not numbered 0..n-1")
    ch = []
    for i in blocks:
        w = f"encoder.down_blocks.{i}.resnets.0.conv1.weight"
        if w not in t:
            raise SystemExit(f"convert_vae: {origin}: no {w}")
        ch.append(int(t[w][0]))
    layers = 1 + max(int(m.group(1)) for n in t for m in [re.match(r"encoder\.down_blocks\.0\.resnets\.(\d+)\.", n)] if m)
    cfg = dict(in_channels=int(t["encoder.conv_in.weight"][1]),
               latent_channels=int(t["encoder.conv_out.weight"][0]) // 2,
               block_out_channels=ch, layers_per_block=layers, **ASSUMED)
    if not quiet:
        note(f"{origin}: no config.json; inferred block_out_channels {ch}, layers_per_block {layers}, "
             f"latent_channels {cfg['latent_channels']} from the shapes and assumed SD's "
             f"norm_num_groups {ASSUMED['norm_num_groups']}, scaling_factor {ASSUMED['scaling_factor']} "
             "(pass --config-vae to say otherwise)")
    return cfg


def check_config(cfg, origin):
    """Normalised config (defaults filled); SystemExit for what nn/vae.c does not run."""
    unsupported = []
    if cfg.get("act_fn", "silu") != "silu":
        unsupported.append(f"act_fn {cfg['act_fn']!r} (only silu)")
    kinds = cfg.get("down_block_types")
    if kinds is not None and any(k != "DownEncoderBlock2D" for k in kinds):
        unsupported.append(f"down_block_types {kinds} (only DownEncoderBlock2D)")
    if not cfg.get("mid_block_add_attention", True):
        unsupported.append("mid_block_add_attention false")
    if not cfg.get("use_quant_conv", True):
        unsupported.append("use_quant_conv false")
    if unsupported:
        raise SystemExit(f"convert_vae: {origin}: unsupported VAE config: {'; '.join(unsupported)}")
    out = {k: cfg.get(k, v) for k, v in DEFAULTS.items()}
    if out["sample_size"] is None or isinstance(out["sample_size"], (list, tuple)):
        s = out["sample_size"]
        out["sample_size"] = int(s[0]) if s else ASSUMED["sample_size"]
    ch = out["block_out_channels"]
    if kinds is not None and len(kinds) != len(ch):
        raise SystemExit(f"convert_vae: {origin}: {len(kinds)} down_block_types for {len(ch)} block_out_channels")
    g = out["norm_num_groups"]
    bad = [c for c in ch if c % g]
    if bad:
        raise SystemExit(f"convert_vae: {origin}: block_out_channels {bad} not divisible by norm_num_groups {g}")
    return out


# ---------------------------------------------------------------- conversion

def vae_encoder_from_tensors(tensors, config=None, origin="", prefix="vae.", quiet=False):
    """(meta, iterator of (prefix + canonical name, array)) from {source name: array}.

    tensors: the VAE's tensors alone, in any of the three namings (all under
    "first_stage_model." is fine). config: a diffusers AutoencoderKL config
    dict, or None to infer it from the shapes. Arrays stay lazy (memmap
    views) until the iterator's consumer reads them.
    """
    names = list(tensors)
    if names and all(n.startswith("first_stage_model.") for n in names):
        tensors = {n[len("first_stage_model."):]: v for n, v in tensors.items()}
    canon, unknown, skipped = {}, [], 0
    for name, t in tensors.items():
        c = canonical_name(name)
        if c is None:
            unknown.append(name)
        elif c == "":
            skipped += 1
        elif c in canon:
            raise SystemExit(f"convert_vae: {origin}: {name} and {canon[c][0]} are the same tensor {c}")
        else:
            canon[c] = (name, t)
    if unknown:
        raise SystemExit(f"convert_vae: {origin}: tensors an AutoencoderKL does not have: "
                         f"{', '.join(sorted(unknown)[:10])}{' ...' if len(unknown) > 10 else ''}")
    shapes = {c: tuple(v[1].shape) for c, v in canon.items()}
    cfg = check_config(config if config is not None else infer_config(shapes, origin, quiet), origin)
    want = expected_shapes(cfg)
    extra = sorted(canon[c][0] for c in canon if c not in want)
    if extra:
        raise SystemExit(f"convert_vae: {origin}: tensors this VAE config does not have: "
                         f"{', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    missing = [c for c in want if c not in canon]
    if missing:
        raise SystemExit(f"convert_vae: {origin}: missing tensors: {', '.join(missing[:10])}"
                         f"{' ...' if len(missing) > 10 else ''}")
    for c, shape in want.items():
        src, t = canon[c]
        got = tuple(t.shape)
        if got != shape and not (len(shape) == 2 and got == shape + (1, 1)):
            raise SystemExit(f"convert_vae: {origin}: {src} has shape {list(got)}, the config implies {list(shape)}")
        if np.dtype(t.dtype).kind != "f":
            raise SystemExit(f"convert_vae: {origin}: {src} is {np.dtype(t.dtype)}, expected floating point")
    if not quiet and skipped:
        note(f"{origin}: skipped {skipped} decoder tensors (dc needs the encoder only)")

    meta = {prefix + k: cfg[k] for k in ("in_channels", "latent_channels", "block_out_channels",
                                         "layers_per_block", "norm_num_groups", "sample_size")}
    meta = {k: (list(map(int, v)) if isinstance(v, (list, tuple)) else int(v)) for k, v in meta.items()}
    meta[prefix + "scaling_factor"] = float(cfg["scaling_factor"])

    def items():
        for c, shape in want.items():
            t = canon[c][1]
            if tuple(t.shape) != shape:          # a 1x1-conv attention projection -> [C, C]
                t = np.asarray(t).reshape(shape)
            yield prefix + c, t

    return meta, items()


def vae_source(src):
    """(config dict or None, .safetensors path) for a vae folder, a pipeline folder or a file;
    a config.json beside a lone file only if it is a VAE's."""
    return component_source(src, "vae", "convert_vae",
                            lambda c: "latent_channels" in c or c.get("_class_name") == "AutoencoderKL")


def vae_encoder(folder_or_file, prefix="vae.", config=None, quiet=False):
    """(meta, iterator of (canonical name, array)) for a diffusers vae folder
    (config.json + diffusion_pytorch_model.safetensors), a pipeline folder,
    or a .safetensors file (config.json beside it, else inferred). config:
    a dict that overrides the file's config.json."""
    file_cfg, path = vae_source(folder_or_file)
    try:
        tensors = open_safetensors(path)
    except ValueError as e:
        raise SystemExit(f"convert_vae: {e}") from None
    return vae_encoder_from_tensors(tensors, config if config is not None else file_cfg, path, prefix, quiet)

