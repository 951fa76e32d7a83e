#!/usr/bin/env python3
"""bench/make_random_dit.py - a seeded random DiT-XL/2 with the real tensor
names and shapes (tests/fixtures/key_lists/dit_xl_2_256.json), written
as DiT-XL-2-{256,512}x{..}.safetensors, so that speed and memory can be
measured on the full-size model without downloading the checkpoint. The
converter then reads it like a real download (size from the file name).

Weights ~ N(0, 1/fan_in), biases N(0, 0.02^2); values do not matter for
timing, shapes do. numpy only.

usage: make_random_dit.py OUTDIR [--size 256|512] [--seed N]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "convert"))
from safetensors_np import write_safetensors  # noqa: E402

KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "key_lists", "dit_xl_2_256.json")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--size", type=int, default=256, choices=[256, 512])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keys", default=KEYS, help="key list (name, shape) of DiT-XL/2 at 256")
    a = p.parse_args()
    with open(a.keys) as f:
        keys = json.load(f)["keys"]
    rng = np.random.default_rng(a.seed)
    tokens = (a.size // 8 // 2) ** 2
    tensors = {}
    for name, shape in keys:
        if name == "pos_embed":  # the only size-dependent tensor
            shape = [1, tokens, shape[2]]
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = 0.02 if len(shape) == 1 else 1 / np.sqrt(fan_in)
        tensors[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"DiT-XL-2-{a.size}x{a.size}.safetensors")
    write_safetensors(path, tensors)
    print(f"wrote {path}: {len(tensors)} tensors, {sum(t.size for t in tensors.values())} parameters")


if __name__ == "__main__":
    main()
