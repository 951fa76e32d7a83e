#!/usr/bin/env python3
"""tools/train/baselines_glyphs.py - discriminative baselines for glyphs1k:
logistic regression on pixels and a small CNN, trained on the training fonts
(the pixels train_glyphs.py and dc see) and tested on the held-out fonts,
as baselines_fmnist.py does for Fashion-MNIST.

usage: baselines_glyphs.py [--minutes-logreg M] [--minutes-cnn M] [--threads N] [--data build/glyphs1k]
Prints one line per model: top-1 and top-5 on all test images,
and training and test seconds.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from baselines_fmnist import fit  # noqa: E402
from train_glyphs import CLASSES, DATA, class_names, read_split  # noqa: E402


def topk(model, x, y, k=5):
    t0 = time.time()
    with torch.no_grad():
        top = torch.cat([model(x[i:i + 1000]).topk(k, 1).indices for i in range(0, x.shape[0], 1000)])
    return (top[:, 0] == y).float().mean().item(), (top == y[:, None]).any(1).float().mean().item(), time.time() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes-logreg", type=float, default=1.5)
    p.add_argument("--minutes-cnn", type=float, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=DATA)
    p.add_argument("--classes", default=CLASSES)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n = len(class_names(a.classes))
    xtr, ytr = read_split("train", a.data, a.classes)
    xte, yte = read_split("test", a.data, a.classes)
    xtr, xte = xtr[:, :1].contiguous(), xte[:, :1].contiguous()
    models = {
        "logistic regression (pixels)": (nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, n)), a.minutes_logreg, 1e-3),
        "small CNN (2 conv + 2 fc)": (nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, n)), a.minutes_cnn, 1e-3),
    }
    for name, (model, minutes, lr) in models.items():
        secs, steps = fit(model, xtr, ytr, minutes, lr, 0)
        top1, top5, test_secs = topk(model.eval(), xte, yte)
        print(f"{name}: test top-1 {top1:.4f}, top-5 {top5:.4f} ({xte.shape[0]} images, held-out fonts), "
              f"{steps} steps ({steps * 128 / xtr.shape[0]:.1f} epochs) in {secs:.0f} s, "
              f"test {test_secs / xte.shape[0] * 1e3:.3f} ms/image", flush=True)


if __name__ == "__main__":
    main()
