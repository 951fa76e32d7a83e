#!/usr/bin/env python3
"""tools/convert/convert_clip.py - the CLIP text encoder (transformers' CLIPTextModel,
Stable Diffusion's text_encoder/) to dc's names and clip.* metadata.

Stable Diffusion ships its text encoder as a transformers folder:
config.json + model.safetensors with names text_model.embeddings.*,
text_model.encoder.layers.<i>.*, text_model.final_layer_norm.*. SD 1.x's is
CLIP ViT-L/14's text tower (quick_gelu), SD 2.x's is OpenCLIP ViT-H's
exported to the same format (gelu, 23 layers). dc keeps those names,
behind a prefix ("text." in a full SD model file), and reads the
hyper-parameters from metadata (nn/clip.c):

    clip.hidden_size, clip.intermediate_size, clip.num_heads, clip.num_layers,
    clip.max_positions, clip.vocab_size, clip.act ("quick_gelu" | "gelu"),
    clip.layer_norm_eps

text_model.embeddings.position_ids (an int64 buffer older transformers
saved) is skipped; any other tensor the model does not have stops the
conversion with its name; a missing one is reported by the engine when it
loads the file.

The original single-file checkpoints hold the same tower under other
names: SD 1.x as cond_stage_model.transformer.text_model.* (transformers
names behind a prefix), SD 2.x in OpenCLIP's layout
(cond_stage_model.model.transformer.resblocks.<i>.attn.in_proj_weight, ...,
24 blocks of which SD 2.x runs 23). Those are mapped onto the same
canonical names here, so the engine sees one layout. Needs numpy alone.

    clip_text(folder_or_file, prefix="text.", config=None) -> (meta, iterator of (name, array))
    clip_text_from_checkpoint(tensors, config=None, prefix="text.") -> (meta, iterator)
        (for a state dict already read, e.g. a .ckpt through tools/convert/torch_pt.py)

From the command line: convert.py SRC --family clip [--config-text JSON],
SRC a text_encoder folder (config.json + *.safetensors), a .safetensors
file with config.json beside it, or an SD single-file .safetensors
checkpoint. --dtype applies to the token and position embeddings too (the
engine decodes only the rows it looks up).
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcw import source_name  # noqa: E402
from safetensors_np import open_safetensors  # noqa: E402

# transformers' hidden_act -> dc's clip.act. "gelu" is the exact (erf) GELU.
ACTS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}

# config.json key -> metadata key (all required)
CONFIG_KEYS = {
    "hidden_size": "clip.hidden_size",
    "intermediate_size": "clip.intermediate_size",
    "num_attention_heads": "clip.num_heads",
    "num_hidden_layers": "clip.num_layers",
    "max_position_embeddings": "clip.max_positions",
    "vocab_size": "clip.vocab_size",
}

# per-layer tensors, under text_model.encoder.layers.<i>.
LAYER_TENSORS = [
    f"{m}.{p}" for m in ("layer_norm1", "layer_norm2", "self_attn.q_proj", "self_attn.k_proj",
                         "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")
    for p in ("weight", "bias")]
GLOBAL_TENSORS = ["embeddings.token_embedding.weight", "embeddings.position_embedding.weight",
                  "final_layer_norm.weight", "final_layer_norm.bias"]
SKIPPED = {"embeddings.position_ids"}   # int64 [1, max_positions] buffer, not a weight


def clip_meta(config, origin):
    """clip.* metadata from a transformers CLIPTextConfig dict."""
    # a full CLIPConfig nests the text tower's config
    if "text_config" in config and "hidden_size" not in config:
        config = config["text_config"]
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise SystemExit(f"convert: {origin}: missing CLIP text config keys {', '.join(missing)}")
    meta = {}
    for key, mkey in CONFIG_KEYS.items():
        v = config[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SystemExit(f"convert: {origin}: {key} = {v!r}, expected a positive integer")
        meta[mkey] = v
    act = config.get("hidden_act", "quick_gelu")    # CLIPTextConfig's default
    if act not in ACTS:
        raise SystemExit(f"convert: {origin}: hidden_act {act!r} is not supported "
                         f"(dc runs {', '.join(sorted(ACTS))})")
    meta["clip.act"] = ACTS[act]
    meta["clip.layer_norm_eps"] = float(config.get("layer_norm_eps", 1e-5))
    if meta["clip.hidden_size"] % meta["clip.num_heads"]:
        raise SystemExit(f"convert: {origin}: hidden_size {meta['clip.hidden_size']} is not divisible "
                         f"by num_attention_heads {meta['clip.num_heads']}")
    return meta


def clip_text_tensors(tensors, meta, prefix="text.", source_prefix="", origin="checkpoint"):
    """(canonical name, array) for every CLIP text tensor in `tensors` whose
    name starts with source_prefix + "text_model." (a full checkpoint may
    hold other components under other prefixes; with source_prefix "" every
    tensor must be CLIP's). Checks all names first, so an unknown tensor
    stops the conversion before anything is written."""
    known = set(GLOBAL_TENSORS) | SKIPPED
    for i in range(meta["clip.num_layers"]):
        known.update(f"encoder.layers.{i}.{t}" for t in LAYER_TENSORS)
    head = source_prefix + "text_model."
    picked, unknown = [], []
    for name in tensors:
        if source_prefix and not name.startswith(source_prefix):
            continue
        short = name[len(head):] if name.startswith(head) else None
        if short is None or short not in known:
            unknown.append(name)
        elif short not in SKIPPED:
            picked.append((prefix + "text_model." + short, name))
    if unknown:
        more = f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else ""
        raise SystemExit(f"convert: {origin}: tensors a CLIP text model with "
                         f"{meta['clip.num_layers']} layer{'s' if meta['clip.num_layers'] != 1 else ''} does not have: "
                         f"{', '.join(sorted(unknown)[:8])}{more}")
    return ((canon, tensors[name]) for canon, name in picked)


# ---------------------------------------------------------------- SD single-file checkpoints

# The text towers of the original SD checkpoints (v1-5-pruned.safetensors,
# v2-1_512-ema-pruned.safetensors), which hold no config: the transformers
# configs of the released text encoders (tests/fixtures/key_lists).
SD1_TEXT_CONFIG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                       layer_norm_eps=1e-5)
SD2_TEXT_CONFIG = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                       num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
                       layer_norm_eps=1e-5)

SD1_PREFIX = "cond_stage_model.transformer."     # + text_model.* (transformers names)
SD2_PREFIX = "cond_stage_model.model."           # OpenCLIP names
# OpenCLIP per-block names -> transformers' (in_proj is split into q, k, v)
OPENCLIP_LAYER = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                  "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
# OpenCLIP tensors the text encoder does not use (the projection into the
# joint image-text space, the contrastive temperature, the mask buffer)
OPENCLIP_UNUSED = {"text_projection", "logit_scale", "attn_mask"}


def checkpoint_layout(tensors):
    """"sd1", "sd2" or None: which single-file layout the tensor names follow."""
    if SD1_PREFIX + "text_model.embeddings.token_embedding.weight" in tensors:
        return "sd1"
    if SD2_PREFIX + "token_embedding.weight" in tensors:
        return "sd2"
    return None


def openclip_text_tensors(tensors, meta, prefix="text.", source_prefix=SD2_PREFIX, origin="checkpoint"):
    """(canonical name, array) from an OpenCLIP text tower (SD 2.x single-file
    checkpoints: cond_stage_model.model.*), as transformers' CLIPTextModel
    would hold it after diffusers' conversion. SD 2.x conditions on the
    penultimate block followed by ln_final (FrozenOpenCLIPEmbedder,
    layer="penultimate"), which the HF export represents by dropping the
    last block: so the checkpoint must hold clip.num_layers + 1 blocks and
    the last one is left out."""
    n = meta["clip.num_layers"]
    D = meta["clip.hidden_size"]
    out, unknown = [], []
    canon = prefix + "text_model."
    blocks = set()
    for name in tensors:
        if not name.startswith(source_prefix):
            continue
        short = name[len(source_prefix):]
        if short == "token_embedding.weight":
            out.append((canon + "embeddings.token_embedding.weight", tensors[name]))
        elif short == "positional_embedding":
            out.append((canon + "embeddings.position_embedding.weight", tensors[name]))
        elif short in ("ln_final.weight", "ln_final.bias"):
            out.append((canon + "final_layer_norm." + short.split(".")[1], tensors[name]))
        elif short in OPENCLIP_UNUSED or short.startswith("visual."):
            continue                     # the image tower, if a checkpoint kept it
        elif short.startswith("transformer.resblocks."):
            parts = short.split(".")
            if len(parts) < 5 or not parts[2].isdigit():
                unknown.append(name)
                continue
            i, rest = int(parts[2]), ".".join(parts[3:])
            blocks.add(i)
            if i == n:
                continue                 # the last block: SD 2.x never runs it
            if i > n:
                unknown.append(name)
                continue
            layer = f"{canon}encoder.layers.{i}."
            module, _, param = rest.rpartition(".")
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                t = tensors[name]
                if t.shape[0] != 3 * D:
                    raise SystemExit(f"convert: {origin}: {name} has {t.shape[0]} rows, expected 3 x {D}")
                kind = "weight" if rest.endswith("weight") else "bias"
                for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
                    out.append((f"{layer}self_attn.{proj}.{kind}", t[j * D:(j + 1) * D]))
            elif module in OPENCLIP_LAYER and param in ("weight", "bias"):
                out.append((f"{layer}{OPENCLIP_LAYER[module]}.{param}", tensors[name]))
            else:
                unknown.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise SystemExit(f"convert: {origin}: OpenCLIP tensors dc does not know: {', '.join(sorted(unknown)[:8])}")
    if blocks and max(blocks) != n:
        raise SystemExit(f"convert: {origin}: {max(blocks) + 1} OpenCLIP blocks; a text encoder of {n} "
                         f"layers (SD 2.x conditions on the penultimate block) needs {n + 1}")
    return iter(out)


def clip_text_from_checkpoint(tensors, config=None, prefix="text.", origin="checkpoint"):
    """(meta, iterator) for the text encoder inside an original SD single-file
    checkpoint (other components' tensors are ignored). config: a
    CLIPTextConfig dict; by default SD1_TEXT_CONFIG or SD2_TEXT_CONFIG by
    layout."""
    layout = checkpoint_layout(tensors)
    if layout is None:
        raise SystemExit(f"convert: {origin}: no CLIP text encoder found (neither {SD1_PREFIX}text_model.* "
                         f"nor {SD2_PREFIX}token_embedding.weight)")
    config = config or (SD1_TEXT_CONFIG if layout == "sd1" else SD2_TEXT_CONFIG)
    meta = clip_meta(config, f"{origin} ({layout} text encoder config)")
    if layout == "sd1":
        return meta, clip_text_tensors(tensors, meta, prefix, SD1_PREFIX, origin)
    return meta, openclip_text_tensors(tensors, meta, prefix, SD2_PREFIX, origin)


# ---------------------------------------------------------------- files

def read_source(src):
    """(config dict or None, its path, {name: tensor} over all shards, files)
    of a folder (config.json + *.safetensors) or a .safetensors file (with
    config.json beside it or not). (tools/convert/convert.py has its own reader; this
    one is here so that convert.py can import this module without a cycle.)"""
    if os.path.isdir(src):
        files = sorted(glob.glob(os.path.join(src, "*.safetensors")))
        cfg_path = os.path.join(src, "config.json")
    elif os.path.isfile(src) and src.endswith(".safetensors"):
        files = [src]
        cfg_path = os.path.join(os.path.dirname(os.path.abspath(src)), "config.json")
    else:
        raise SystemExit(f"convert: {src}: expected a text_encoder folder or a .safetensors file")
    if not files:
        raise SystemExit(f"convert: {src}: no *.safetensors file in this folder")
    config = None
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    tensors = {}
    for path in files:
        try:
            shard = open_safetensors(path)
        except ValueError as e:
            raise SystemExit(f"convert: {e}") from None
        for name, t in shard.items():
            if name in tensors:
                raise SystemExit(f"convert: tensor {name} is in more than one of {', '.join(files)}")
            tensors[name] = t
    return config, cfg_path, tensors, files


def clip_text(folder_or_file, prefix="text.", config=None):
    """(meta, iterator of (canonical name, array)) for a CLIP text encoder:
    a transformers CLIPTextModel (a folder with config.json and
    *.safetensors, or a .safetensors file with config.json beside it), or
    the text tower inside an original SD 1.x / 2.x single-file checkpoint.
    config (a dict) overrides config.json; single-file checkpoints without
    either get the released SD text encoders' configs."""
    file_config, cfg_path, tensors, files = read_source(folder_or_file)
    if config is not None:
        file_config, cfg_path = config, "the given config"
    source = f"{source_name(folder_or_file)} ({', '.join(os.path.basename(f) for f in files)})"
    if checkpoint_layout(tensors):
        meta, named = clip_text_from_checkpoint(tensors, file_config, prefix, folder_or_file)
    else:
        if file_config is None:
            raise SystemExit(f"convert: {folder_or_file}: no config.json beside it: cannot tell the CLIP "
                             "text model's hyper-parameters")
        meta = clip_meta(file_config, cfg_path)
        named = clip_text_tensors(tensors, meta, prefix, origin=folder_or_file)
    meta["dc.source"] = source
    return meta, named

