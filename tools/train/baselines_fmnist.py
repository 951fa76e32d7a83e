#!/usr/bin/env python3
"""tools/train/baselines_fmnist.py - discriminative baselines for the accuracy
table: logistic regression on pixels and a small CNN, trained on the same
Fashion-MNIST training split (with the same 32x32 Pillow preprocessing the
diffusion models see) on the same machine, evaluated on the same fixed test
subset (data/fmnist_subset_2000.txt) and on the whole test set.

usage: baselines_fmnist.py [--minutes-cnn M] [--threads N]
Prints one line per model: accuracy on the subset and on all 10,000, and
training and test seconds.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_fmnist import DATA, preprocess, read_idx  # noqa: E402

SUBSET = os.path.join(HERE, "..", "..", "data", "fmnist_subset_2000.txt")


def load():
    xtr = preprocess(read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz")))[:, :1]
    ytr = torch.from_numpy(read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    xte = preprocess(read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")))[:, :1]
    yte = torch.from_numpy(read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    return xtr, ytr, xte, yte


def fit(model, xtr, ytr, minutes, lr, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0, step = time.time(), 0
    while time.time() - t0 < minutes * 60:
        idx = torch.randint(0, xtr.shape[0], (128,), generator=g)
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    return time.time() - t0, step


def accuracy(model, x, y, idx):
    t0 = time.time()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, x.shape[0], 1000)])
    return (pred[idx] == y[idx]).float().mean().item(), (pred == y).float().mean().item(), time.time() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes-logreg", type=float, default=1.5)
    p.add_argument("--minutes-cnn", type=float, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xtr, ytr, xte, yte = load()
    idx = torch.tensor([int(v) for v in open(SUBSET).read().split()])
    models = {
        "logistic regression (pixels)": (nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10)), a.minutes_logreg, 1e-3),
        "small CNN (2 conv + 2 fc)": (nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10)), a.minutes_cnn, 1e-3),
    }
    for name, (model, minutes, lr) in models.items():
        secs, steps = fit(model, xtr, ytr, minutes, lr, 0)
        sub, full, test_secs = accuracy(model.eval(), xte, yte, idx)
        print(f"{name}: subset-2000 top-1 {sub:.4f}, all-10000 top-1 {full:.4f}, "
              f"{steps} steps ({steps * 128 / 60000:.1f} epochs) in {secs:.0f} s, test {test_secs / 10000 * 1e3:.3f} ms/image",
              flush=True)


if __name__ == "__main__":
    main()
