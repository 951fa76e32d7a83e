#!/usr/bin/env python3
"""bench/error_bank.py - a bank of real per-timestep errors, for simulating
stopping rules at many classes (bench/many_classes.c).

Each image of a Fashion-MNIST selection is scored for every class at the
shared grid of 50 timesteps (--samples 50 --keep 1, seed 0) by a shipped
model through the Python module, and the errors are saved as .npy files:
  PREFIX-errors.npy    float32 [images, classes, 50]
  PREFIX-labels.npy    int32 [images]
  PREFIX-timesteps.npy int32 [50] (ascending: the grid)

usage: bench/error_bank.py MODEL.dcw SUBSET.txt PREFIX [--threads N]
(the images are test images; SUBSET lists their indices, e.g.
data/fmnist_val_200.txt, which the reported subset does not contain)
"""
import argparse
import gzip
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import dc  # noqa: E402  (before numpy, which loads OpenMP: dc makes its threads wait passively)
import numpy as np  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    if raw[2] == 8 and raw[3] == 3:
        n, h, w = np.frombuffer(raw[4:16], ">u4")
        return np.frombuffer(raw[16:], np.uint8).reshape(n, h, w)
    return np.frombuffer(raw[8:], np.uint8).astype(np.int32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("subset")
    p.add_argument("prefix")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    images = idx(f"{DATA}/t10k-images-idx3-ubyte.gz")
    labels = idx(f"{DATA}/t10k-labels-idx1-ubyte.gz")
    sel = np.loadtxt(a.subset, dtype=np.int64, comments="#").reshape(-1)
    model = dc.Model(a.model)
    errors, ts = [], None
    for k, i in enumerate(sel):
        r = model.classify(images[i], samples=[50], keep=[1], stop="adaptive", seed=0, threads=a.threads)
        order = np.argsort(r.timesteps)
        if ts is None:
            ts = r.timesteps[order]
        errors.append(r.errors[:, order])
        if (k + 1) % 20 == 0:
            print(f"{k + 1}/{len(sel)} images", file=sys.stderr)
    np.save(a.prefix + "-errors.npy", np.asarray(errors, np.float32))
    np.save(a.prefix + "-labels.npy", labels[sel].astype(np.int32))
    np.save(a.prefix + "-timesteps.npy", np.asarray(ts, np.int32))


if __name__ == "__main__":
    main()
