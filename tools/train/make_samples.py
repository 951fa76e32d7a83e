#!/usr/bin/env python3
"""tools/train/make_samples.py - writes data/samples/: the first 3 Fashion-MNIST
test images of each class, as 28x28 grey PNGs named CLASS_INDEX.png (class
names with spaces as '-'), for the README's main-job command and the
end-to-end test. The test split is only sampled here, never trained on."""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_fmnist import CLASSES, DATA, read_idx  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "samples")
x = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))
y = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"))
os.makedirs(OUT, exist_ok=True)
for c, name in enumerate(CLASSES):
    for i in np.nonzero(y == c)[0][:3]:
        Image.fromarray(x[i]).save(os.path.join(OUT, f"{name.replace(' ', '-')}_{i:04d}.png"))
print(f"wrote {len(os.listdir(OUT))} images to {os.path.normpath(OUT)}")
