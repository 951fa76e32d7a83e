#!/usr/bin/env python3
"""bench/make_random_sd.py - a seeded random full-size Stable Diffusion
pipeline folder, for benchmarks (bench/sd_bench.sh).

Speed and memory do not depend on the weights' values, and the released
weights cannot be downloaded here; so this writes a folder laid out exactly
as diffusers saves SD 1.5 or 2.1 (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/), with every tensor's real name and
shape from tests/fixtures/key_lists and seeded random values:

  conv / linear weights  N(0, 1/fan_in)      biases        N(0, 0.05^2)
  norm weights           1 + N(0, 0.1^2)     embeddings    N(0, 1/width)

so activations keep a sane scale through the network (no overflow, no
denormals to slow the kernels). Each tensor has its own generator (seeded
by the seed and its index), so the values do not depend on write order.

SD 1.5 is about 4.3 GB of float32 (UNet 3.4 GB): tensors are generated and
written one at a time. safetensors_np.write_safetensors holds every tensor
until the end, so this writes the same format itself: the header (all
offsets follow from the shapes) first, then each tensor's bytes.

The tokenizer files are tests/fixtures/clip_tokenizer's (CLIP's real
vocabulary and merges); for 2.1 its pad token is set to "!" as in the
released SD 2.x tokenizer/. The scheduler is SD's (scaled_linear
0.00085..0.012, epsilon).

usage: make_random_sd.py OUTDIR [--version 1.5|2.1] [--seed N] [--fixtures DIR]
Needs numpy alone.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# component folder -> (key list, weights file, class name), per version
PARTS = {
    "1.5": {"unet": ("sd15_unet", "diffusion_pytorch_model.safetensors", "UNet2DConditionModel"),
            "vae": ("sd_vae", "diffusion_pytorch_model.safetensors", "AutoencoderKL"),
            "text_encoder": ("clip_vit_l14_text", "model.safetensors", "CLIPTextModel")},
    "2.1": {"unet": ("sd21_unet", "diffusion_pytorch_model.safetensors", "UNet2DConditionModel"),
            "vae": ("sd_vae", "diffusion_pytorch_model.safetensors", "AutoencoderKL"),
            "text_encoder": ("openclip_vit_h14_text_sd2", "model.safetensors", "CLIPTextModel")},
}


def random_tensor(name, shape, seed, index):
    """Seeded random float32 values for one tensor (see the module doc for the scales)."""
    rng = np.random.default_rng([seed, index])
    a = rng.standard_normal(shape, dtype=np.float32)
    if len(shape) == 1:
        if name.endswith("bias"):
            a *= 0.05
        else:                                   # a norm's weight
            a *= 0.1
            a += 1
    elif name.endswith(("token_embedding.weight", "position_embedding.weight")):
        a *= 1 / np.sqrt(shape[-1])
    else:
        a *= 1 / np.sqrt(int(np.prod(shape[1:])))
    return a


def write_random_safetensors(path, keys, seed):
    """A safetensors file of random F32 tensors [(name, shape)], one tensor in memory at a time."""
    header, pos = {}, 0
    for name, shape in keys:
        n = 4 * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)             # the header is padded to 8 bytes, as the format does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for i, (name, shape) in enumerate(keys):
            a = random_tensor(name, tuple(shape), seed, i)
            f.write(a.astype("<f4", copy=False).tobytes())
            assert f.tell() == 8 + len(text) + header[name]["data_offsets"][1], name
    return pos


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a seeded random full-size SD pipeline folder (diffusers layout).")
    p.add_argument("outdir", help="the pipeline folder to write")
    p.add_argument("--version", choices=sorted(PARTS), default="1.5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fixtures", default=os.path.join(ROOT, "tests", "fixtures"))
    args = p.parse_args(argv)
    key_lists = os.path.join(args.fixtures, "key_lists")
    tok_src = os.path.join(args.fixtures, "clip_tokenizer")
    for d in (key_lists, tok_src):
        if not os.path.isdir(d):
            raise SystemExit(f"make_random_sd: {d}: not found (pass --fixtures DIR)")
    os.makedirs(args.outdir, exist_ok=True)
    t0, total = time.time(), 0
    for part, (sub, (kl, fname, cls)) in enumerate(PARTS[args.version].items()):
        with open(os.path.join(key_lists, kl + ".json"), encoding="utf-8") as f:
            d = json.load(f)
        folder = os.path.join(args.outdir, sub)
        os.makedirs(folder, exist_ok=True)
        cfg = dict(d["config"])
        if cls == "CLIPTextModel":
            cfg["architectures"] = [cls]
        else:
            cfg["_class_name"] = cls
        with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
        # each component its own seed stream
        nbytes = write_random_safetensors(os.path.join(folder, fname), d["keys"], args.seed * 100 + part)
        params = nbytes // 4
        if params != d["total_parameters"]:
            raise SystemExit(f"make_random_sd: {kl}: wrote {params} parameters, "
                             f"the key list says {d['total_parameters']}")
        total += nbytes
        print(f"{sub}: {len(d['keys'])} tensors, {params} parameters", file=sys.stderr)
    tok = os.path.join(args.outdir, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(tok_src, name), os.path.join(tok, name))
    with open(os.path.join(tok_src, "tokenizer_config.json"), encoding="utf-8") as f:
        tcfg = json.load(f)
    if args.version == "2.1":
        tcfg["pad_token"] = "!"                # open_clip's padding, as SD 2.x's tokenizer/ says
    with open(os.path.join(tok, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=2)
    os.makedirs(os.path.join(args.outdir, "scheduler"), exist_ok=True)
    with open(os.path.join(args.outdir, "scheduler", "scheduler_config.json"), "w", encoding="utf-8") as f:
        json.dump({"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                   "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "epsilon",
                   "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1}, f, indent=2)
    with open(os.path.join(args.outdir, "model_index.json"), "w", encoding="utf-8") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "note": f"random SD {args.version} for benchmarks "
                   f"(bench/make_random_sd.py, seed {args.seed})",
                   "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                   "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                   "scheduler": ["diffusers", "PNDMScheduler"]}, f, indent=2)
    print(f"wrote {args.outdir}: random SD {args.version}, {total / 1e9:.2f} GB in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
