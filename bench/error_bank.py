#!/usr/bin/env python3
"""bench/error_bank.py - a bank of real per-timestep errors, for replaying
stopping rules at many classes (bench/many_classes.c).

Each image of a selection is scored for every class at the shared grid of
G timesteps (--samples G --keep 1, seed 0; G = 50 unless --grid) by a model
through the Python module, and the errors are saved as .npy files:
  PREFIX-errors.npy    float32 [images, classes, G]
  PREFIX-labels.npy    int32 [images] (the true class's index in the model's classes)
  PREFIX-timesteps.npy int32 [G] (ascending: the grid)

usage: bench/error_bank.py MODEL.dcw SUBSET.txt PREFIX [--grid G] [--data FOLDER] [--threads N]
The images are Fashion-MNIST's test images, or with --data the images of a
class-folder tree (root/CLASS/*.png) in `dc eval`'s order (class folders
sorted, then files sorted); SUBSET lists their indices (e.g.
data/fmnist_val_200.txt, which the reported subset does not contain, or
data/glyphs1k_test_100.txt). Progress goes to stderr.
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


def folder_images(root, classes):
    """The image paths of root/CLASS/ in dc eval's order, and each one's index in classes."""
    index = {name: c for c, name in enumerate(classes)}
    paths, labels = [], []
    for name in sorted(os.listdir(root), key=os.fsencode):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        if name not in index:
            sys.exit(f"error_bank: class folder '{name}' is not one of the model's classes")
        for f in sorted(os.listdir(folder), key=os.fsencode):
            if f.lower().endswith((".png", ".jpg", ".jpeg")):
                paths.append(os.path.join(folder, f))
                labels.append(index[name])
    return paths, np.asarray(labels, np.int32)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("subset")
    p.add_argument("prefix")
    p.add_argument("--grid", type=int, default=50, help="timesteps per class (default 50)")
    p.add_argument("--data", help="a class-folder tree instead of Fashion-MNIST's test set")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=None, help="evaluations per network call")
    a = p.parse_args()
    sel = np.loadtxt(a.subset, dtype=np.int64, comments="#").reshape(-1)
    model = dc.Model(a.model)
    if a.data:
        images, labels = folder_images(a.data, model.classes)
    else:
        images = idx(f"{DATA}/t10k-images-idx3-ubyte.gz")
        labels = idx(f"{DATA}/t10k-labels-idx1-ubyte.gz")
    extra = {"batch": a.batch} if a.batch else {}
    errors, ts = [], None
    for k, i in enumerate(sel):
        r = model.classify(images[i], samples=[a.grid], keep=[1], stop="adaptive", seed=0, threads=a.threads,
                           **extra)
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
