#!/usr/bin/env python3
"""tools/refs/make_image_refs.py - reference pixels for dc's image tests, made
with Pillow (the library the reference pipelines resize with):

- small synthetic test images in several formats and modes (RGB, grey,
  RGBA, palette, 16-bit grey PNG; JPEG; BMP) under tests/data/images/;
- Pillow's Image.resize results (BICUBIC and BOX, up and down, odd sizes);
- the Stable Diffusion preprocessing of the official code (torchvision
  Resize(size, BICUBIC) + CenterCrop(size) + ToTensor + Normalize(0.5, 0.5),
  written out here with Pillow because torchvision is not installed: short
  side to size, long side int(size * long / short), crop top/left
  int(round((h - size) / 2)));
- DiT's center_crop_arr (ADM): BOX halving while the short side >= 2 size,
  BICUBIC to round(x * size / short), crop at (h - size) // 2.

usage: make_image_refs.py [OUTDIR]   (default tests/data/images)
"""
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "images")


def synthetic(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (255 * x / max(w - 1, 1)).astype(np.uint8)
    g = (255 * y / max(h - 1, 1)).astype(np.uint8)
    b = rng.integers(0, 256, (h, w), dtype=np.uint8)  # noise: resampling must get every tap right
    return Image.fromarray(np.stack([r, g, b], -1), "RGB")


def to_tensor(img):
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return ((a - 0.5) / 0.5).transpose(2, 0, 1)


def sd_preprocess(img, size):
    w, h = img.size
    short, long = min(w, h), max(w, h)
    new_short, new_long = size, int(size * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.convert("RGB").resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return to_tensor(img.crop((left, top, left + size, top + size)))


def adm_preprocess(img, size):
    img = img.convert("RGB")
    while min(*img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(*img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    arr = np.array(img)
    cy, cx = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return to_tensor(Image.fromarray(arr[cy:cy + size, cx:cx + size]))


def main():
    os.makedirs(OUT, exist_ok=True)
    base = synthetic(45, 31, 1)
    files = {
        "rgb_45x31.png": base,
        "grey_20x50.png": synthetic(20, 50, 2).convert("L"),
        "rgba_33x33.png": synthetic(33, 33, 3).convert("RGBA"),
        "palette_40x24.png": synthetic(40, 24, 4).convert("P"),
        "photo_70x52.jpg": synthetic(70, 52, 5),
        "rgb_16x12.bmp": synthetic(16, 12, 6),
    }
    synthetic(64, 40, 8).save(os.path.join(OUT, "progressive_64x40.jpg"), quality=85, progressive=True,
                              optimize=True)
    for name, img in files.items():
        img.save(os.path.join(OUT, name), quality=90) if name.endswith(".jpg") else img.save(os.path.join(OUT, name))
    # 16-bit grey: Pillow writes I;16 PNGs; stb_image reduces them to 8 bits (>> 8)
    g16 = (np.arange(24 * 18, dtype=np.uint16).reshape(18, 24) * 150).astype(np.uint16)
    Image.fromarray(g16, "I;16").save(os.path.join(OUT, "grey16_24x18.png"))
    np.save(os.path.join(OUT, "grey16_24x18_pixels.npy"), g16.astype(np.int64))
    # decoded pixels of the lossless files, as Pillow sees them in RGB
    for name in ("rgb_45x31.png", "grey_20x50.png", "rgba_33x33.png", "palette_40x24.png", "rgb_16x12.bmp"):
        np.save(os.path.join(OUT, name.split(".")[0] + "_rgb.npy"),
                np.asarray(Image.open(os.path.join(OUT, name)).convert("RGB"), dtype=np.int64))
    # resizes of the 45x31 image
    for w, h, box in ((20, 14, 0), (97, 60, 0), (45, 10, 0), (13, 31, 0), (22, 15, 1), (7, 5, 0)):
        r = base.resize((w, h), Image.BOX if box else Image.BICUBIC)
        np.save(os.path.join(OUT, f"resize_{w}x{h}_{'box' if box else 'bicubic'}.npy"),
                np.asarray(r, dtype=np.int64))
    # the two pipelines on a larger, non-square image
    big = synthetic(150, 97, 7)
    big.save(os.path.join(OUT, "rgb_150x97.png"))
    np.save(os.path.join(OUT, "sd_150x97_to_32.npy"), sd_preprocess(big, 32))
    np.save(os.path.join(OUT, "sd_150x97_to_128.npy"), sd_preprocess(big, 128))
    np.save(os.path.join(OUT, "adm_150x97_to_16.npy"), adm_preprocess(big, 16))
    np.save(os.path.join(OUT, "adm_150x97_to_40.npy"), adm_preprocess(big, 40))
    print(f"wrote image references to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
