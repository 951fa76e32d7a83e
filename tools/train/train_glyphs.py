#!/usr/bin/env python3
"""tools/train/train_glyphs.py - trains the 1,000-class models on glyphs1k
(make glyphs1k; training fonts only, the test fonts are never read here but
by `vae-check`), with Debian's python3-torch on the CPU. Seeded. The
training loops are train_fmnist.py's; only the data and the DiT's size differ.

    train_glyphs.py vae       OUTDIR [--minutes M | --steps N]              AutoencoderKL, fmnist's configuration
    train_glyphs.py dit       OUTDIR --vae VAEDIR [--minutes M | --steps N] class-conditional DiT, 1,000 classes
    train_glyphs.py vae-check VAEDIR                             reconstruction MSE on the test renders

Saved as train_fmnist.py saves them (a diffusers VAE folder; the DiT as
DiT-glyphs1k.pt + config.json), for tools/convert/convert.py.

Images: the 32x32 grey PNGs, replicated to RGB, scaled to [-1, 1], through
the same Pillow path as Fashion-MNIST (a 32x32 image passes BICUBIC to 32
unchanged): what dc's ADM preprocessing gives for these files.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from train_fmnist import load_vae, preprocess, train_dit, train_vae  # noqa: E402

DATA = os.path.join(ROOT, "build", "glyphs1k")
CLASSES = os.path.join(ROOT, "data", "classes", "glyphs1k.txt")
# 8x8x4 latent, patches of 2: 16 tokens. Depth 6 at width 256 is ~7.5 M parameters: ~15 MB in f16
DIT_CFG = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=256, depth=6, num_heads=8,
               mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=False)
# fmnist's 3e-4 for everything learns 1,000 classes too slowly for a CPU's budget: in 1,000-step trials
# (1 thread each, same seed) the loss with true labels was 0.2% below the loss with shuffled labels at
# step 400 with 3e-4, 0.7% with a class table at 1e-2, 2.9% with 1e-3 and a table at 3e-2
LR, CLASS_LR = 1e-3, 3e-2


def class_names(path=CLASSES):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_split(split, data=DATA, classes=CLASSES):
    """[N, 3, 32, 32] in [-1, 1] and labels (the line of the class in the class list), in a fixed
    shuffled order so any prefix (the VAE's scaling estimate) spans classes and fonts."""
    from PIL import Image
    names = class_names(classes)
    images, labels = [], []
    for label, ch in enumerate(names):
        folder = os.path.join(data, split, ch)
        for f in sorted(os.listdir(folder)):
            if f.endswith(".png"):
                with Image.open(os.path.join(folder, f)) as im:
                    images.append(np.asarray(im.convert("L")))
                labels.append(label)
    if not images:
        sys.exit(f"{data}/{split}: no images (make glyphs1k)")
    x = preprocess(np.stack(images), size=32)
    y = torch.tensor(labels, dtype=torch.int64)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    print(f"{split}: {x.shape[0]} images of {len(names)} classes", flush=True)
    return x[order], y[order]


def vae_check(vae_dir, data, classes):
    """Mean squared error of decode(mean(encode(x))) on the test renders, in [-1, 1] units."""
    vae, _ = load_vae(vae_dir)
    x, _ = read_split("test", data, classes)
    with torch.no_grad():
        se = sum(F.mse_loss(vae.decode(vae.encode(x[i:i + 500])[0]), x[i:i + 500], reduction="sum").item()
                 for i in range(0, x.shape[0], 500))
    print(f"vae-check: test renders reconstruction MSE {se / x.numel():.5f} ([-1, 1] units)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["vae", "dit", "vae-check"])
    p.add_argument("out", help="vae, dit: the output folder; vae-check: the VAE folder")
    p.add_argument("--vae", help="dit: the trained VAE folder")
    p.add_argument("--data", default=DATA, help="glyphs1k's folder (train/ and test/)")
    p.add_argument("--classes", default=CLASSES)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--steps", type=int, help="stop after this many steps instead of --minutes (the same model "
                   "on a busy machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()

    def train_data():
        x, y = read_split("train", a.data, a.classes)
        print(f"read in {time.time() - t0:.0f} s", flush=True)
        return x, y

    if a.what == "vae":
        train_vae(a.out, a.minutes, a.seed, data=train_data, steps=a.steps)
    elif a.what == "vae-check":
        vae_check(a.out, a.data, a.classes)
    else:
        if not a.vae:
            p.error("dit needs --vae FOLDER")
        train_dit(a.out, a.vae, a.minutes, a.seed, data=train_data, cfg=DIT_CFG, checkpoint="DiT-glyphs1k.pt",
                  steps=a.steps, lr=LR, class_lr=CLASS_LR)


if __name__ == "__main__":
    main()
