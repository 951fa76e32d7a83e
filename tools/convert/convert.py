#!/usr/bin/env python3
"""tools/convert/convert.py - turns a published checkpoint into one .dcw file for dc.

dc reads exactly one weight format, .dcw (docs/dcw-format.md): every
hyper-parameter as metadata, every tensor under dc's canonical name. This
script is the converter's one command line and the only place that knows
other formats; the modules beside it do the work per family. It needs
numpy alone.

    convert.py SRC -o OUT.dcw [--family NAME] [--dtype f32|f16|q8] [--meta KEY=VALUE ...]
    convert.py --info FILE.dcw
    convert.py --edit-meta FILE.dcw -o OUT.dcw [--meta KEY=VALUE ...] [--drop-meta KEY ...]
               [--calibration FILE]

SRC is what users download: a diffusers pipeline or component folder, a
transformers folder, a .safetensors file (sharded folders are fine), a DiT
.pt state dict or an original Stable Diffusion single-file checkpoint
(.pt/.ckpt are read without torch, tools/convert/torch_pt.py).

The family is told from SRC (detect_family: diffusers' model_index.json or
config.json _class_name, transformers' config.json architectures, tokenizer
files, then the tensor names); --family is needed only where that fails,
and then the converter says so rather than guess.

Families plug in through FAMILIES: a function (src, args) -> (meta,
iterator of (canonical name, array)) that maps the source's tensor names
to dc's and puts the hyper-parameters the engine needs into meta:

    sd         a diffusers Stable Diffusion pipeline folder, or an original
               single-file checkpoint (tools/convert/convert_sd_single.py)
    dit        DiT's state dict (.pt or .safetensors), here
    clip, vae, unet, tokenizer
               one component alone: tools/convert/convert_<family>.py
    raw        names kept as they are, config.json flattened into "config.<key>"
               (only when asked for: never chosen by detection)

Whatever the family, --dtype applies to tensors of two or more dimensions
(1-D norms and biases stay f32), integer and bool tensors are skipped, and
--meta KEY=VALUE entries are added last (overriding the family's).
"""
import argparse
import glob
import itertools
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcw import read_dcw_index, source_name, stored_tensors, write_dcw  # noqa: E402
from safetensors_np import open_safetensors, read_header  # noqa: E402
from torch_pt import load_state_dict, state_dict_keys  # noqa: E402
from convert_clip import checkpoint_layout, clip_text  # noqa: E402
from convert_vae import vae_encoder  # noqa: E402
import convert_sd_single  # noqa: E402
import convert_tokenizer  # noqa: E402
import convert_unet  # noqa: E402


def note(msg):
    print(f"convert: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- sources

def find_source(src):
    """(config dict or None, sorted list of .safetensors paths) for a file or a folder."""
    if os.path.isdir(src):
        files = sorted(glob.glob(os.path.join(src, "*.safetensors")))
        if not files:
            raise SystemExit(f"convert: {src}: no *.safetensors file in this folder")
        cfg_path = os.path.join(src, "config.json")
        config = None
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                config = json.load(f)
        return config, files
    if os.path.isfile(src):
        if not src.endswith(".safetensors"):
            raise SystemExit(f"convert: {src}: expected a .safetensors file or a folder")
        return None, [src]
    raise SystemExit(f"convert: {src}: no such file or folder")


def open_shards(files):
    """{name: tensor} across all shards; a name in two shards is an error."""
    tensors, where = {}, {}
    for path in files:
        for name, t in open_safetensors(path).items():
            if name in tensors:
                raise SystemExit(f"convert: tensor {name} is in both {where[name]} and {path}")
            tensors[name], where[name] = t, path
    return tensors


def flatten_config(cfg, prefix="config."):
    """Flat metadata {prefix + dotted key: value} from a JSON config.

    Nested objects join their keys with dots; bools become ints; lists of
    numbers or of strings are kept; null and lists of anything else are
    skipped with a note.
    """
    out = {}
    for key, value in cfg.items():
        full = prefix + str(key)
        if isinstance(value, dict):
            out.update(flatten_config(value, full + "."))
            continue
        if len(full.encode("utf-8")) > 255:
            note(f"skipping config key {full}: longer than 255 bytes")
        elif value is None:
            note(f"skipping config key {full}: null")
        elif isinstance(value, (bool, int, float, str)):
            out[full] = int(value) if isinstance(value, bool) else value
        elif isinstance(value, list):
            nums = all(isinstance(v, (bool, int, float)) for v in value)
            strs = all(isinstance(v, str) for v in value)
            if nums:
                out[full] = [int(v) if isinstance(v, bool) else v for v in value]
            elif strs:
                out[full] = value
            else:
                note(f"skipping config key {full}: a list of mixed or nested values")
        else:
            note(f"skipping config key {full}: unsupported value {value!r}")
    return out


# ---------------------------------------------------------------- families

def convert_raw(src, args):
    """Tensor names kept as they are; config.json (if any) as config.* metadata."""
    config, files = find_source(src)
    meta = flatten_config(config) if config else {}
    names = ", ".join(os.path.basename(f) for f in files)
    meta["dc.source"] = f"{source_name(src)} ({names})"
    tensors = open_shards(files)
    return meta, iter(tensors.items())


# DiT's published sizes (models.py: DiT_XL_2 ... DiT_S_8): depth, hidden, heads
DIT_SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}
DIT_NAME = re.compile(r"DiT-(XL|L|B|S)-(2|4|8)-(\d+)x\d+")


def dit_config(src, ckpt, tensors):
    """DiT's constructor arguments: config.json beside the checkpoint, else
    the model name in the file name (DiT-XL-2-256x256.pt: XL/2 at 256 px)."""
    folder = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    cfg_path = os.path.join(folder, "config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        origin = cfg_path
    else:
        m = DIT_NAME.search(os.path.basename(ckpt))
        if not m:
            raise SystemExit(f"convert: {ckpt}: no config.json beside it and no DiT model name "
                             "(like DiT-XL-2-256x256) in its file name: cannot tell its size")
        depth, hidden, heads = DIT_SIZES[m.group(1)]
        cfg = dict(input_size=int(m.group(3)) // 8, patch_size=int(m.group(2)), in_channels=4,
                   hidden_size=hidden, depth=depth, num_heads=heads, mlp_ratio=4.0,
                   num_classes=1000, learn_sigma=True)
        origin = f"the file name {os.path.basename(ckpt)}"
    defaults = dict(in_channels=4, mlp_ratio=4.0, num_classes=1000, learn_sigma=True)
    cfg = {**defaults, **cfg}
    need = ["input_size", "patch_size", "hidden_size", "depth", "num_heads"]
    missing = [k for k in need if k not in cfg]
    if missing:
        raise SystemExit(f"convert: {origin}: missing DiT arguments {', '.join(missing)}")
    # check the config against the tensors, so a wrong guess is an error, not garbage
    D, p, C = cfg["hidden_size"], cfg["patch_size"], cfg["in_channels"]
    T = (cfg["input_size"] // p) ** 2
    Co = 2 * C if cfg["learn_sigma"] else C
    expect = {"pos_embed": (1, T, D), "x_embedder.proj.weight": (D, C, p, p),
              "blocks.0.mlp.fc1.weight": (int(D * cfg["mlp_ratio"]), D),
              "final_layer.linear.weight": (p * p * Co, D)}
    for name, shape in expect.items():
        if name not in tensors:
            raise SystemExit(f"convert: {ckpt}: tensor {name} is missing: not a DiT state dict?")
        if tuple(tensors[name].shape) != shape:
            raise SystemExit(f"convert: {ckpt}: {name} has shape {list(tensors[name].shape)} but the "
                             f"config from {origin} implies {list(shape)}")
    depth = 1 + max(int(k.split(".")[1]) for k in tensors if k.startswith("blocks."))
    if depth != cfg["depth"]:
        raise SystemExit(f"convert: {ckpt}: {depth} blocks, but the config from {origin} says {cfg['depth']}")
    rows = tensors["y_embedder.embedding_table.weight"].shape[0]
    if rows not in (cfg["num_classes"], cfg["num_classes"] + 1):
        raise SystemExit(f"convert: {ckpt}: label table has {rows} rows, num_classes is {cfg['num_classes']}")
    if D % cfg["num_heads"]:
        raise SystemExit(f"convert: {origin}: hidden_size {D} is not divisible by num_heads {cfg['num_heads']}")
    return cfg


def convert_dit(src, args):
    """DiT (facebookresearch/DiT): a .pt state dict or .safetensors, with
    config.json of constructor arguments beside it or a model name in the file
    name. Tensor names are kept (they are dc's canonical DiT names);
    pos_embed stays f32 (fixed sin-cos values, not a learned weight)."""
    if os.path.isdir(src):
        found = sorted(glob.glob(os.path.join(src, "*.pt")) + glob.glob(os.path.join(src, "*.pth")) +
                       glob.glob(os.path.join(src, "*.safetensors")))
        if len(found) != 1:
            raise SystemExit(f"convert: {src}: expected one .pt or .safetensors checkpoint, found {len(found)}")
        ckpt = found[0]
    else:
        ckpt = src
    if ckpt.endswith((".pt", ".pth")):
        tensors = load_state_dict(ckpt)
    elif ckpt.endswith(".safetensors"):
        tensors = open_shards([ckpt])
    else:
        raise SystemExit(f"convert: {ckpt}: expected a .pt, .pth or .safetensors DiT checkpoint")
    cfg = dit_config(src, ckpt, tensors)
    meta = {f"dit.{k}": cfg[k] for k in ("input_size", "patch_size", "in_channels", "hidden_size",
                                         "depth", "num_heads", "num_classes")}
    meta["dit.mlp_ratio"] = float(cfg["mlp_ratio"])
    meta["dit.learn_sigma"] = int(bool(cfg["learn_sigma"]))
    # the ADM/DiT noise schedule: linear betas 1e-4 .. 0.02 over 1000 steps, eps target
    meta.update({"schedule.beta_schedule": "linear", "schedule.beta_start": 1e-4,
                 "schedule.beta_end": 0.02, "schedule.num_train_timesteps": 1000,
                 "schedule.prediction_type": "epsilon"})
    class_file = getattr(args, "class_names", None)
    imagenet = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "classes",
                            "imagenet.txt")
    if not class_file and cfg["num_classes"] == 1000 and os.path.exists(imagenet):
        class_file = imagenet  # the ImageNet-1k models: name their classes
        note(f"class names from {os.path.normpath(imagenet)}")
    if class_file:
        with open(class_file, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != cfg["num_classes"]:
            raise SystemExit(f"convert: {class_file}: {len(names)} names for {cfg['num_classes']} classes")
        meta["classes.names"] = names
    meta["dc.source"] = source_name(ckpt)
    unknown = [k for k in tensors if not (k in ("pos_embed",) or k.split(".")[0] in
                                          ("x_embedder", "t_embedder", "y_embedder", "blocks", "final_layer"))]
    if unknown:
        raise SystemExit(f"convert: {ckpt}: tensors DiT does not have: {', '.join(unknown[:8])}")
    named = ((k, v, "f32") if k == "pos_embed" else (k, v) for k, v in tensors.items())
    if getattr(args, "vae", None):  # the image encoder DiT's pipeline uses (sd-vae-ft-ema / -mse)
        vmeta, vnamed = vae_encoder(args.vae)
        meta.update(vmeta)
        meta["dc.source"] += f" + VAE {source_name(args.vae)}"
        return meta, itertools.chain(named, vnamed)
    return meta, named


def config_arg(args, key):
    """The JSON config a --config-* option names (a dict), or None."""
    return convert_sd_single.read_json(getattr(args, key, None), "--" + key.replace("_", "-"))


def convert_clip_family(src, args):
    """A CLIP text encoder alone (transformers folder or file): tools/convert/convert_clip.py.
    --config-text replaces its config.json."""
    return clip_text(src, config=config_arg(args, "config_text"))


def convert_vae_family(src, args):
    """An AutoencoderKL encoder alone (diffusers vae folder or file): tools/convert/convert_vae.py.
    --config-vae replaces its config.json (or the config inferred from the shapes)."""
    meta, named = vae_encoder(src, config=config_arg(args, "config_vae"))
    meta["dc.source"] = source_name(src)
    return meta, named


def convert_tokenizer_family(src, args):
    """A CLIP tokenizer alone (a folder with vocab.json and merges.txt, or
    bpe_simple_vocab_16e6.txt(.gz)): tokenizer.* metadata and no tensors,
    for dc tokenize. tools/convert/convert_tokenizer.py."""
    try:
        return convert_tokenizer.tokenizer_meta(src), iter(())
    except ValueError as e:
        raise SystemExit(f"convert: {e}") from None


def sd_schedule(folder):
    """scheduler/scheduler_config.json -> schedule.* metadata (the DDPM training schedule)."""
    path = os.path.join(folder, "scheduler", "scheduler_config.json")
    cfg = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    else:
        note(f"{folder}: no scheduler/scheduler_config.json; using SD's scaled_linear 0.00085..0.012, epsilon")
    kind = cfg.get("beta_schedule", "scaled_linear")
    if kind not in ("linear", "scaled_linear"):
        raise SystemExit(f"convert: {path}: beta_schedule {kind!r} (dc knows linear and scaled_linear)")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction"):
        raise SystemExit(f"convert: {path}: prediction_type {pred!r} (dc knows epsilon and v_prediction)")
    return {"schedule.beta_schedule": kind, "schedule.beta_start": float(cfg.get("beta_start", 0.00085)),
            "schedule.beta_end": float(cfg.get("beta_end", 0.012)),
            "schedule.num_train_timesteps": int(cfg.get("num_train_timesteps", 1000)),
            "schedule.prediction_type": pred}


def convert_sd(src, args):
    """A Stable Diffusion pipeline folder as diffusers saves it (model_index.json
    with text_encoder/, tokenizer/, vae/, unet/, scheduler/): everything the
    classifier needs in one file (the VAE decoder and safety checker are left out).
    An original single-file checkpoint (.safetensors / .ckpt with CompVis
    names) goes to tools/convert/convert_sd_single.py instead."""
    if os.path.isfile(src) and src.endswith((".safetensors", ".ckpt", ".pt", ".pth")):
        meta, named = convert_sd_single.sd_single_file(src, args)
        meta.update(sd_classes(args))
        return meta, named
    if not os.path.isdir(src) or not os.path.exists(os.path.join(src, "model_index.json")):
        raise SystemExit(f"convert: {src}: expected a diffusers pipeline folder (with model_index.json)")
    meta = sd_schedule(src)
    meta.update(convert_tokenizer.tokenizer_meta(os.path.join(src, "tokenizer")))
    parts = []
    for sub, fn in (("text_encoder", lambda d: clip_text(d)), ("vae", lambda d: vae_encoder(d)),
                    ("unet", lambda d: convert_unet.unet(d))):
        folder = os.path.join(src, sub)
        if not os.path.isdir(folder):
            raise SystemExit(f"convert: {src}: the pipeline has no {sub}/ folder")
        m, named = fn(folder)
        m.pop("dc.source", None)
        meta.update(m)
        parts.append(named)
    meta.update(sd_classes(args))
    meta["dc.source"] = source_name(src)
    return meta, itertools.chain(*parts)


# A timestep calibration file, by the rules of dc.h (above
# dc_calibration_load), which the engine's reader applies too; both readers
# are tested on the files in tests/data/calibration/.
CALIB_MAX_T = 100000        # dc.h DC_CALIB_MAX_T: timesteps are 0 <= t < this
CALIB_LINE_MAX = 1024       # dc.h DC_CALIB_LINE_MAX: bytes per line, without its ending
_CALIB_POINT = re.compile(rb"([0-9]+)[ \t]+([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?:[ \t]|$)")


def read_calibration(path):
    """A timestep calibration (dc calibrate, dc eval --calibrate: "t spread
    ..." lines) -> classify.calib_t / classify.calib_spread, for the
    calibrated and screened rules (dc classify's default with it)."""
    ts, spread = [], []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the ending of the last line
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if len(line) > CALIB_LINE_MAX:
            raise SystemExit(f"convert: {path}: line {n} is longer than {CALIB_LINE_MAX} bytes")
        body = line.lstrip(b" \t")
        if not body or body.startswith(b"#"):
            continue
        m = _CALIB_POINT.match(body)
        if not m:
            raise SystemExit(f"convert: {path}: line {n}: expected 't spread' (a whole number, a decimal "
                             f"number, then anything), got {body[:60].decode(errors='replace')!r}")
        t, v = int(m.group(1)), float(m.group(2))
        if t >= CALIB_MAX_T or (ts and t <= ts[-1]) or not 0 <= v < 1e30:
            raise SystemExit(f"convert: {path}: point {len(ts) + 1} (t {t}, spread {v:g}): timesteps must be "
                             f"whole numbers 0 <= t < {CALIB_MAX_T}, strictly ascending, spreads finite and >= 0")
        ts.append(t)
        spread.append(v)
    if not ts:
        raise SystemExit(f"convert: {path} has no timestep")
    return {"classify.calib_t": ts, "classify.calib_spread": spread}


def sd_classes(args):
    """--class-names / --template -> classes.names / classes.template: a model that knows its classes."""
    meta = {}
    if getattr(args, "class_names", None):
        with open(args.class_names, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if not names or len(set(names)) != len(names):
            raise SystemExit(f"convert: {args.class_names}: expected distinct class names, one per line")
        meta["classes.names"] = names
    tmpl = getattr(args, "template", None)
    if tmpl is not None:
        if tmpl.count("{}") != 1:
            raise SystemExit(f"convert: --template {tmpl!r}: needs one {{}} for the class name")
        meta["classes.template"] = tmpl
    return meta


def convert_unet_family(src, args):
    """A UNet2DConditionModel alone (diffusers unet folder or file): tools/convert/convert_unet.py.
    --config-unet replaces its config.json."""
    return convert_unet.unet(src, config=config_arg(args, "config_unet"))


FAMILIES = {"sd": convert_sd, "dit": convert_dit, "clip": convert_clip_family, "vae": convert_vae_family,
            "unet": convert_unet_family, "tokenizer": convert_tokenizer_family, "raw": convert_raw}


# ---------------------------------------------------------------- which family

# What a source says about itself, in the order detect_family asks:
# diffusers names a pipeline in model_index.json and a component in its
# config.json (_class_name), transformers names the model class in
# config.json (architectures); a tokenizer is its files; anything else is
# told by its tensor names.
PIPELINES = {"StableDiffusionPipeline": "sd"}
CLASS_NAMES = {"UNet2DConditionModel": "unet", "AutoencoderKL": "vae"}
ARCHITECTURES = {"CLIPTextModel": "clip"}
DIT_KEYS = ("x_embedder.proj.weight", "y_embedder.embedding_table.weight", "final_layer.linear.weight")
CHECKPOINTS = (".safetensors", ".pt", ".pth", ".ckpt")
VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


def read_json_object(path):
    """A JSON file's object, or None where it is absent or not an object."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"convert: {path}: {e}") from None
    return obj if isinstance(obj, dict) else None


def tensor_names(path):
    """The tensor names a checkpoint file holds, read from its header or
    pickle alone (nothing of the tensors themselves)."""
    if path.endswith(".safetensors"):
        try:
            return list(read_header(path)[0])
        except ValueError as e:
            raise SystemExit(f"convert: {e}") from None
    return state_dict_keys(path)


def family_from_names(names):
    """The family a set of tensor names belongs to, or None."""
    if all(k in names for k in DIT_KEYS):
        return "dit"
    if checkpoint_layout(names) or any(k.startswith(convert_sd_single.UNET_PREFIX) for k in names):
        return "sd"
    bare = [k[len(convert_sd_single.VAE_PREFIX):] if k.startswith(convert_sd_single.VAE_PREFIX) else k
            for k in names]
    if "encoder.conv_in.weight" in bare and all(k.startswith(VAE_PARTS) for k in bare):
        return "vae"
    return None


def detect_family(src):
    """(family, what told it) for SRC, or SystemExit naming what was looked
    at when nothing does: then --family has to say it."""
    if not os.path.exists(src):
        raise SystemExit(f"convert: {src}: no such file or folder")
    folder = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    seen = []
    if os.path.isdir(src):
        index = read_json_object(os.path.join(src, "model_index.json"))
        if index is not None:
            cls = index.get("_class_name")
            if cls in PIPELINES:
                return PIPELINES[cls], f"model_index.json: {cls}"
            seen.append(f"model_index.json names {cls!r} (dc converts {', '.join(PIPELINES)} folders)")
    config = read_json_object(os.path.join(folder, "config.json"))
    if config is not None:
        cls = config.get("_class_name")
        if cls in CLASS_NAMES:
            return CLASS_NAMES[cls], f"config.json: {cls}"
        archs = config.get("architectures")
        known = [a for a in archs if a in ARCHITECTURES] if isinstance(archs, list) else []
        if known:
            return ARCHITECTURES[known[0]], f"config.json: architectures {known[0]}"
        if cls is not None or archs is not None:
            seen.append(f"config.json names {cls if cls is not None else archs!r}")
    if os.path.isdir(src):
        if all(os.path.isfile(os.path.join(src, n)) for n in ("vocab.json", "merges.txt")):
            return "tokenizer", "vocab.json and merges.txt"
        files = sorted(f for f in glob.glob(os.path.join(src, "*")) if f.endswith(CHECKPOINTS))
    elif src.endswith((".txt", ".txt.gz")):
        return "tokenizer", "a BPE merges file"
    else:
        files = [src] if src.endswith(CHECKPOINTS) else []
    for path in files:
        names = tensor_names(path)
        family = family_from_names(set(names))
        if family:
            return family, f"the tensor names in {os.path.basename(path)}"
        seen.append(f"{os.path.basename(path)} holds {len(names)} tensors ({', '.join(sorted(names)[:3])}"
                    f"{', ...' if len(names) > 3 else ''})")
    if not files:
        seen.append("no checkpoint file (" + ", ".join(CHECKPOINTS) + ")")
    raise SystemExit(f"convert: {src}: cannot tell the model family: {'; '.join(seen)}. Pass --family "
                     f"{'|'.join(FAMILIES)} (raw keeps the tensors and their names as they are)")


# ---------------------------------------------------------------- the CLI

def meta_options(args, meta):
    """meta with --calibration, --drop-meta KEY and --meta KEY=VALUE applied, in that order."""
    meta = dict(meta)
    if getattr(args, "calibration", None):
        meta.update(read_calibration(args.calibration))
    for key in getattr(args, "drop_meta", None) or []:
        if key not in meta:
            raise SystemExit(f"convert: --drop-meta {key}: no such metadata key")
        del meta[key]
    for item in args.meta or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"convert: --meta {item!r}: expected KEY=VALUE")
        meta[key] = parse_meta_value(value)
    return meta


def edit_meta(args):
    """A .dcw again with other metadata and every tensor's stored bytes as
    they were (copied, not decoded and encoded again), through the one writer."""
    try:
        meta, _, _ = read_dcw_index(args.edit_meta)
        tensors = stored_tensors(args.edit_meta)
    except (ValueError, OSError) as e:
        raise SystemExit(f"convert: {e}") from None
    for key in ("dc.family", "dc.source"):
        if key in (args.drop_meta or []):
            raise SystemExit(f"convert: --drop-meta {key}: every .dcw has it (--meta {key}=... replaces it)")
    meta = meta_options(args, meta)
    try:
        write_dcw(args.out, meta, tensors)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"convert: {e}") from None
    print(f"wrote {args.out}: {len(tensors)} tensors as stored in {args.edit_meta}, {len(meta)} metadata keys")


def parse_meta_value(text):
    """--meta VALUE: a JSON number, bool or list if it parses as one, else the text as a string."""
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, list)):
        return v
    return text


def choose_tensors(named, dtype):
    """(name, array, stored dtype) per tensor: dtype for ndim >= 2, f32 for 1-D; integers skipped."""
    out = []
    for item in named:  # (name, array) or (name, array, forced storage dtype)
        name, t = item[0], item[1]
        kind = np.dtype(t.dtype).kind
        if kind not in "f":
            note(f"skipping {name}: {np.dtype(t.dtype)} tensor (only float tensors are converted)")
            continue
        if t.ndim == 0:
            note(f"{name}: a scalar, stored with shape [1]")
            t = np.asarray(t, dtype=np.float32).reshape(1)
        if t.ndim > 4:
            raise SystemExit(f"convert: {name}: {t.ndim} dimensions, a .dcw holds 1 to 4")
        out.append((name, t, item[2] if len(item) > 2 else dtype if t.ndim >= 2 else "f32"))
    return out


def convert(args):
    family = args.family
    if family is None:
        family, why = detect_family(args.src)
        note(f"family {family} (from {why}; --family overrides)")
    elif family not in FAMILIES:
        raise SystemExit(f"convert: unknown family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    meta, named = FAMILIES[family](args.src, args)
    meta = dict(meta)
    meta["dc.family"] = family
    source = meta.pop("dc.source", source_name(args.src))
    meta = meta_options(args, meta)
    tensors = choose_tensors(named, args.dtype)
    try:
        write_dcw(args.out, meta, tensors, source=source)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"convert: {e}") from None
    n = sum(int(np.prod(t.shape)) for _, t, _ in tensors)
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} parameters, "
          f"{os.path.getsize(args.out)} bytes")


def show_value(v, max_items=8, max_chars=80):
    if isinstance(v, list):
        head = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in v[:max_items])
        more = f", ... ({len(v)} items)" if len(v) > max_items else ""
        return f"[{head}{more}]"
    if isinstance(v, str):
        return repr(v if len(v) <= max_chars else v[:max_chars] + "...")
    return str(v)


def info(path):
    try:
        meta, entries, size = read_dcw_index(path)
    except (ValueError, OSError) as e:
        raise SystemExit(f"convert: {e}") from None
    print(f"{path}: {len(meta)} metadata keys, {len(entries)} tensors")
    width = max((len(k) for k in meta), default=0)
    for k, v in meta.items():
        print(f"  {k:<{width}}  {show_value(v)}")
    print()
    width = max((len(e.name) for e in entries), default=4)
    print(f"  {'name':<{width}}  dtype  shape")
    params = 0
    for e in entries:
        params += int(np.prod(e.shape, dtype=np.int64))
        print(f"  {e.name:<{width}}  {e.dtype:<5}  [{', '.join(map(str, e.shape))}]")
    print()
    print(f"total parameters: {params}")
    print(f"file size: {size} bytes ({size / (1 << 20):.1f} MiB)")


def main(argv=None):
    p = argparse.ArgumentParser(description="Convert a checkpoint to dc's .dcw weight file, "
                                "or describe a .dcw file (--info).")
    p.add_argument("src", nargs="?", help="the model: a folder (diffusers, transformers) or a checkpoint file")
    p.add_argument("-o", "--out", help="output .dcw path")
    p.add_argument("--dtype", choices=["f32", "f16", "q8"], default="f32",
                   help="storage of tensors with 2 or more dimensions (1-D ones stay f32); default f32")
    p.add_argument("--family", help=f"model family: {', '.join(FAMILIES)} (default: told from SRC)")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE",
                   help="extra metadata; VALUE is read as JSON (number, list) if it parses, else as text")
    p.add_argument("--vae", metavar="FOLDER", help="DiT: the VAE (diffusers folder) to include, so dc classify "
                   "can encode images")
    p.add_argument("--class-names", metavar="FILE", help="class names, one per line, stored in the model: the "
                   "classes dc classify uses when given none (DiT: one per class id)")
    p.add_argument("--template", metavar="T", help="SD: the prompt template stored in the model (with {} for the "
                   "class name), used when dc classify is given none")
    p.add_argument("--calibration", metavar="FILE", help="a timestep calibration from dc eval --calibrate, "
                   "stored in the model for dc classify --stop calibrated")
    p.add_argument("--tokenizer", metavar="DIR_OR_BPE", help="SD single-file checkpoints: the CLIP tokenizer (a "
                   "folder with vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz)")
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], help="SD single-file checkpoints: "
                   "what the UNet predicts (default epsilon; the SD 2.x 768-v checkpoints need v_prediction)")
    p.add_argument("--config-unet", metavar="JSON", help="a diffusers UNet config: for --family unet instead "
                   "of config.json, for SD single-file checkpoints instead of the SD 1.x / 2.x one")
    p.add_argument("--config-vae", metavar="JSON", help="a diffusers AutoencoderKL config: for --family vae "
                   "instead of config.json, for SD single-file checkpoints instead of the one read from the shapes")
    p.add_argument("--config-text", metavar="JSON", help="a transformers CLIPTextConfig: for --family clip "
                   "instead of config.json, for SD single-file checkpoints instead of the released SD 1.x / 2.x one")
    p.add_argument("--drop-meta", action="append", metavar="KEY", help="with --edit-meta: metadata to remove")
    p.add_argument("--info", metavar="FILE.dcw", help="print a .dcw file's metadata and tensors")
    p.add_argument("--edit-meta", metavar="FILE.dcw", help="write FILE.dcw again to -o with its metadata changed "
                   "by --meta, --drop-meta and --calibration, every tensor's stored bytes unchanged")
    args = p.parse_args(argv)
    if args.info:
        info(args.info)
        return
    if args.edit_meta:
        if args.src or not args.out:
            p.error("--edit-meta FILE.dcw takes -o OUT.dcw and no SRC")
        edit_meta(args)
        return
    if not args.src or not args.out:
        p.error("need SRC and -o OUT.dcw (or --info FILE.dcw)")
    convert(args)


if __name__ == "__main__":
    main()
