#!/usr/bin/env python3
"""tools/convert/convert_unet.py - the Stable Diffusion UNet (diffusers'
UNet2DConditionModel, as SD 1.x and 2.x use it) into dc's canonical names,
for nn/unet.c.

The UNet is the denoiser the classifier calls thousands of times per image.
Its architecture is fully described by config.json; this script reads it,
normalises the fields diffusers lets be an int or a per-block list, checks
that the model is one nn/unet.c runs, derives from it the name and shape of
every tensor, and refuses a checkpoint whose tensors differ (an unknown,
missing or mis-shaped tensor is named in the error).

Canonical names are prefix ("unet.") + the diffusers names, unchanged.
Metadata (prefix + key):
  in_channels, out_channels, sample_size, cross_attention_dim,
  norm_num_groups, time_embed_dim                                int
  norm_eps, freq_shift, mid_block_scale_factor                    float
  flip_sin_to_cos, use_linear_projection, upcast_attention,
  center_input_sample                                             int 0/1
  block_out_channels, layers_per_block, transformer_layers_per_block,
  attention_head_dim                                              int array, one per block
  num_attention_heads                                             int array, only if the config sets it
  down_block_types, up_block_types                                string array

Heads: diffusers 0.25 passes `num_attention_heads or attention_head_dim`
to the blocks as the NUMBER of heads (legacy naming: SD 1.x has 8 heads of
40..160 channels, SD 2.x [5, 10, 20, 20] heads of 64). Down block i uses
heads[i], the mid block heads[-1], up block i heads[-1 - i]; a transformer
of C channels has head dim C // heads and width heads * (C // heads).

    unet(folder_or_file, prefix="unet.", config=None) -> (meta, iterator of (name, array))
    unet_from_tensors(tensors, config, origin, prefix="unet.") -> the same, from {name: array}
    normalise_config(config, origin) -> the per-block config nn/unet.c needs
    expected_shapes(cfg) -> {diffusers name: shape}, in forward order

From the command line: convert.py SRC --family unet [--config-unet JSON],
SRC a diffusers unet folder (config.json + diffusion_pytorch_model.safetensors),
a pipeline folder (uses unet/), or a .safetensors file with config.json
beside it. Needs numpy only.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_np import component_source, open_safetensors  # noqa: E402

# UNet2DConditionModel's constructor defaults (diffusers 0.25.1) for the keys dc reads
DEFAULTS = dict(
    sample_size=None, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
    freq_shift=0, down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn", up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, mid_block_scale_factor=1.0,
    norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=1280, transformer_layers_per_block=1,
    attention_head_dim=8, num_attention_heads=None, use_linear_projection=False, upcast_attention=False,
    time_embedding_dim=None)

# constructor arguments whose non-default values change the network in ways
# nn/unet.c does not implement: (key, the values it accepts)
UNSUPPORTED = [
    ("act_fn", ("silu", "swish")), ("only_cross_attention", (False, None)), ("dual_cross_attention", (False, None)),
    ("class_embed_type", (None,)), ("num_class_embeds", (None,)), ("addition_embed_type", (None,)),
    ("addition_time_embed_dim", (None,)), ("encoder_hid_dim", (None,)), ("encoder_hid_dim_type", (None,)),
    ("resnet_time_scale_shift", ("default",)), ("resnet_skip_time_act", (False,)),
    ("resnet_out_scale_factor", (1, 1.0)), ("time_embedding_type", ("positional",)),
    ("time_embedding_act_fn", (None,)), ("timestep_post_act", (None,)), ("time_cond_proj_dim", (None,)),
    ("conv_in_kernel", (3,)), ("conv_out_kernel", (3,)), ("downsample_padding", (1,)),
    ("projection_class_embeddings_input_dim", (None,)), ("attention_type", ("default",)),
    ("class_embeddings_concat", (False,)), ("mid_block_only_cross_attention", (None, False)),
    ("cross_attention_norm", (None,)), ("reverse_transformer_layers_per_block", (None,)),
    ("mid_block_type", ("UNetMidBlock2DCrossAttn",)), ("dropout", (0, 0.0)),
]
DOWN_TYPES = ("CrossAttnDownBlock2D", "DownBlock2D")
UP_TYPES = ("CrossAttnUpBlock2D", "UpBlock2D")
MAX_BLOCKS = 6   # nn/unet.h DC_UNET_MAX_BLOCKS
MAX_LAYERS = 4   # nn/unet.h DC_UNET_MAX_LAYERS (resnets per down block)


def note(msg):
    print(f"convert_unet: {msg}", file=sys.stderr)


def fail(origin, msg):
    raise SystemExit(f"convert_unet: {origin}: {msg}")


# ---------------------------------------------------------------- config

def per_block(value, key, nblocks, origin):
    """An int (the same for every block) or a list of ints -> a list of nblocks ints."""
    if isinstance(value, bool) or value is None:
        fail(origin, f"{key} = {value!r}: expected an int or a list of ints")
    if isinstance(value, int):
        return [value] * nblocks
    if isinstance(value, (list, tuple)):
        if len(value) != nblocks or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            fail(origin, f"{key} = {value!r}: expected {nblocks} ints, one per block (nested lists, "
                 "as SDXL-style configs use, are not supported)")
        return list(value)
    fail(origin, f"{key} = {value!r}: expected an int or a list of ints")


def normalise_config(config, origin=""):
    """The config with defaults filled and every per-block field a list, or
    SystemExit saying what nn/unet.c cannot run."""
    cls = config.get("_class_name")
    if cls not in (None, "UNet2DConditionModel"):
        fail(origin, f"a {cls} config, expected UNet2DConditionModel")
    bad = []
    for key, ok in UNSUPPORTED:
        if key in config and config[key] not in ok:
            bad.append(f"{key} = {config[key]!r}")
    if bad:
        fail(origin, "unsupported UNet config (nn/unet.c runs SD 1.x/2.x-style UNets): " + "; ".join(bad))
    cfg = {k: config.get(k, v) for k, v in DEFAULTS.items()}
    ch = cfg["block_out_channels"]
    if not isinstance(ch, (list, tuple)) or not ch or not all(isinstance(c, int) and c > 0 for c in ch):
        fail(origin, f"block_out_channels = {ch!r}: expected a list of positive ints")
    B = len(ch)
    if B > MAX_BLOCKS:
        fail(origin, f"{B} blocks, nn/unet.c supports at most {MAX_BLOCKS}")
    down, up = list(cfg["down_block_types"]), list(cfg["up_block_types"])
    if len(down) != B or len(up) != B:
        fail(origin, f"{len(down)} down_block_types and {len(up)} up_block_types for {B} block_out_channels")
    wrong = [t for t in down if t not in DOWN_TYPES] + [t for t in up if t not in UP_TYPES]
    if wrong:
        fail(origin, f"unsupported block types {wrong} (nn/unet.c runs {', '.join(DOWN_TYPES + UP_TYPES)})")
    out = dict(cfg, block_out_channels=list(ch), down_block_types=down, up_block_types=up)
    out["layers_per_block"] = per_block(cfg["layers_per_block"], "layers_per_block", B, origin)
    out["transformer_layers_per_block"] = per_block(cfg["transformer_layers_per_block"],
                                                    "transformer_layers_per_block", B, origin)
    out["attention_head_dim"] = per_block(cfg["attention_head_dim"], "attention_head_dim", B, origin)
    if cfg["num_attention_heads"] is not None:
        out["num_attention_heads"] = per_block(cfg["num_attention_heads"], "num_attention_heads", B, origin)
    # diffusers 0.25: num_attention_heads = num_attention_heads or attention_head_dim
    out["heads"] = out.get("num_attention_heads") or out["attention_head_dim"]
    if any(L < 1 or L > MAX_LAYERS for L in out["layers_per_block"]):
        fail(origin, f"layers_per_block {out['layers_per_block']}: nn/unet.c runs 1 to {MAX_LAYERS}")
    if any(L < 1 for L in out["transformer_layers_per_block"]):
        fail(origin, f"transformer_layers_per_block {out['transformer_layers_per_block']}: must be >= 1")
    cd = cfg["cross_attention_dim"]
    if isinstance(cd, (list, tuple)):
        if len(set(cd)) != 1:
            fail(origin, f"cross_attention_dim {cd}: per-block context widths are not supported")
        cd = cd[0]
    out["cross_attention_dim"] = int(cd)
    g = cfg["norm_num_groups"]
    if not isinstance(g, int) or g < 1:
        fail(origin, f"norm_num_groups = {g!r}: expected a positive int")
    s = cfg["sample_size"]
    out["sample_size"] = int(s[0]) if isinstance(s, (list, tuple)) else int(s) if s is not None else 64
    out["time_embed_dim"] = int(cfg["time_embedding_dim"] or 4 * ch[0])
    for key in ("flip_sin_to_cos", "center_input_sample", "use_linear_projection", "upcast_attention"):
        out[key] = bool(cfg[key])
    # every transformer needs at least one head of at least one channel
    for i, c in enumerate(ch):
        if out["heads"][i] < 1 or out["heads"][i] > c:
            fail(origin, f"block {i}: {out['heads'][i]} heads for {c} channels")
    return out


# ---------------------------------------------------------------- shapes

def expected_shapes(cfg):
    """{diffusers name: shape} of the UNet that cfg (normalised) describes,
    in forward order."""
    ch, B = cfg["block_out_channels"], len(cfg["block_out_channels"])
    layers, tl, heads = cfg["layers_per_block"], cfg["transformer_layers_per_block"], cfg["heads"]
    G, Td, X = cfg["norm_num_groups"], cfg["time_embed_dim"], cfg["cross_attention_dim"]
    linear = cfg["use_linear_projection"]
    out = {}

    def pair(name, wshape, bias=True):
        out[name + ".weight"] = tuple(wshape)
        if bias:
            out[name + ".bias"] = (wshape[0],)

    def norm(name, c):
        if c % G:
            raise SystemExit(f"convert_unet: {name}: {c} channels are not divisible by norm_num_groups {G}")
        pair(name, (c,))

    def resnet(name, ci, co):
        norm(name + ".norm1", ci)
        pair(name + ".conv1", (co, ci, 3, 3))
        pair(name + ".time_emb_proj", (co, Td))
        norm(name + ".norm2", co)
        pair(name + ".conv2", (co, co, 3, 3))
        if ci != co:
            pair(name + ".conv_shortcut", (co, ci, 1, 1))

    def transformer(name, c, h, nlayers):
        D = h * (c // h)                         # inner_dim = heads * (c // heads)
        norm(name + ".norm", c)
        pair(name + ".proj_in", (D, c) if linear else (D, c, 1, 1))
        for k in range(nlayers):
            b = f"{name}.transformer_blocks.{k}"
            pair(b + ".norm1", (D,))
            for p in ("to_q", "to_k", "to_v"):
                pair(f"{b}.attn1.{p}", (D, D), bias=False)
            pair(b + ".attn1.to_out.0", (D, D))
            pair(b + ".norm2", (D,))
            pair(b + ".attn2.to_q", (D, D), bias=False)
            pair(b + ".attn2.to_k", (D, X), bias=False)
            pair(b + ".attn2.to_v", (D, X), bias=False)
            pair(b + ".attn2.to_out.0", (D, D))
            pair(b + ".norm3", (D,))
            pair(b + ".ff.net.0.proj", (8 * D, D))   # GEGLU: value and gate, 4D each
            pair(b + ".ff.net.2", (D, 4 * D))
        pair(name + ".proj_out", (c, D) if linear else (c, D, 1, 1))

    pair("conv_in", (ch[0], cfg["in_channels"], 3, 3))
    pair("time_embedding.linear_1", (Td, ch[0]))
    pair("time_embedding.linear_2", (Td, Td))
    skips = [ch[0]]                              # channels of each skip connection, in order
    cin = ch[0]
    for i in range(B):
        cross = cfg["down_block_types"][i] == "CrossAttnDownBlock2D"
        for j in range(layers[i]):
            resnet(f"down_blocks.{i}.resnets.{j}", cin if j == 0 else ch[i], ch[i])
            if cross:
                transformer(f"down_blocks.{i}.attentions.{j}", ch[i], heads[i], tl[i])
            skips.append(ch[i])
        if i < B - 1:
            pair(f"down_blocks.{i}.downsamplers.0.conv", (ch[i], ch[i], 3, 3))
            skips.append(ch[i])
        cin = ch[i]
    C = ch[-1]
    resnet("mid_block.resnets.0", C, C)
    transformer("mid_block.attentions.0", C, heads[-1], tl[-1])
    resnet("mid_block.resnets.1", C, C)
    rch, rheads, rlayers, rtl = ch[::-1], heads[::-1], layers[::-1], tl[::-1]
    prev = rch[0]
    for i in range(B):
        co, ci = rch[i], rch[min(i + 1, B - 1)]
        cross = cfg["up_block_types"][i] == "CrossAttnUpBlock2D"
        n = rlayers[i] + 1
        for j in range(n):
            skip = ci if j == n - 1 else co     # diffusers' res_skip_channels
            assert skips.pop() == skip           # what the down path left on top, always
            resnet(f"up_blocks.{i}.resnets.{j}", (prev if j == 0 else co) + skip, co)
            if cross:
                transformer(f"up_blocks.{i}.attentions.{j}", co, rheads[i], rtl[i])
        if i < B - 1:
            pair(f"up_blocks.{i}.upsamplers.0.conv", (co, co, 3, 3))
        prev = co
    norm("conv_norm_out", ch[0])
    pair("conv_out", (cfg["out_channels"], ch[0], 3, 3))
    return out


# ---------------------------------------------------------------- conversion

def metadata(cfg, prefix):
    """The unet.* metadata keys nn/unet.c reads."""
    ints = ("in_channels", "out_channels", "sample_size", "cross_attention_dim", "norm_num_groups",
            "time_embed_dim", "flip_sin_to_cos", "use_linear_projection", "upcast_attention",
            "center_input_sample")
    meta = {prefix + k: int(cfg[k]) for k in ints}
    for k in ("norm_eps", "freq_shift", "mid_block_scale_factor"):
        meta[prefix + k] = float(cfg[k])
    for k in ("block_out_channels", "layers_per_block", "transformer_layers_per_block", "attention_head_dim"):
        meta[prefix + k] = [int(v) for v in cfg[k]]
    if cfg.get("num_attention_heads") is not None:
        meta[prefix + "num_attention_heads"] = [int(v) for v in cfg["num_attention_heads"]]
    meta[prefix + "down_block_types"] = list(cfg["down_block_types"])
    meta[prefix + "up_block_types"] = list(cfg["up_block_types"])
    return meta


def unet_from_tensors(tensors, config, origin="", prefix="unet."):
    """(meta, iterator of (prefix + diffusers name, array)) from {diffusers name: array}
    and a diffusers config dict. Arrays stay lazy (memmap views) until read."""
    if config is None:
        fail(origin, "no config.json: the UNet's architecture (heads, projection kind, block types) "
             "cannot be told from the tensors alone; pass --config-unet")
    cfg = normalise_config(config, origin)
    want = expected_shapes(cfg)
    unknown = sorted(k for k in tensors if k not in want)
    if unknown:
        fail(origin, f"tensors this UNet config does not have: {', '.join(unknown[:10])}"
             f"{' ...' if len(unknown) > 10 else ''} ({len(unknown)} in all)")
    missing = [k for k in want if k not in tensors]
    if missing:
        fail(origin, f"missing tensors: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
             f"({len(missing)} in all)")
    for k, shape in want.items():
        got = tuple(tensors[k].shape)
        if got != shape:
            fail(origin, f"{k} has shape {list(got)}, the config implies {list(shape)}")
        if np.dtype(tensors[k].dtype).kind != "f":
            fail(origin, f"{k} is {np.dtype(tensors[k].dtype)}, expected floating point")
    return metadata(cfg, prefix), ((prefix + k, tensors[k]) for k in want)


def unet_source(src):
    """(config dict or None, .safetensors path) for a unet folder, a pipeline folder or a file."""
    return component_source(src, "unet", "convert_unet")


def unet(folder_or_file, prefix="unet.", config=None):
    """(meta, iterator of (canonical name, array)) for a diffusers unet folder
    (config.json + diffusion_pytorch_model.safetensors), a pipeline folder, or
    a .safetensors file with config.json beside it. config: a dict that
    overrides the file's config.json."""
    file_cfg, path = unet_source(folder_or_file)
    try:
        tensors = open_safetensors(path)
    except ValueError as e:
        raise SystemExit(f"convert_unet: {e}") from None
    return unet_from_tensors(tensors, config if config is not None else file_cfg, path, prefix)

