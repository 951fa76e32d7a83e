#!/usr/bin/env python3
"""fuzz/make_seeds.py - writes the seed corpora of the libFuzzer targets
(tests/fuzz_corpus/<target>/): small valid files made the way users' files are
made (the real converter, numpy, Pillow), plus a few damaged copies. The
corpora are committed; this script says where each file came from and
remakes them:

    /usr/bin/python3 fuzz/make_seeds.py TMPDIR

TMPDIR is a folder tools/refs/prepare_tests.py has filled (it holds the small
converted models: test.dcw, tokenizer_tiny.dcw, vae_new_names_q8.dcw,
clip_one_layer.dcw, tokenizer_prompts.txt).
Needs numpy and Pillow (Debian: python3-numpy, python3-pil).
"""
import io
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "..", "tests", "fuzz_corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def weights(tmp):
    for name in ("test.dcw", "tokenizer_tiny.dcw", "vae_new_names_q8.dcw", "clip_one_layer.dcw"):
        with open(os.path.join(tmp, name), "rb") as f:
            put("weights", name, f.read())
    # a small DiT (depth 1, width 32, 3 classes) in q8, through the real converter
    out = os.path.join(tmp, "fuzz_dit_q8.dcw")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert", "convert.py"),
                    os.path.join(ROOT, "tests", "data", "dit", "s32_p2"), "--family", "dit",
                    "--dtype", "q8", "-o", out], check=True, capture_output=True)
    with open(out, "rb") as f:
        put("weights", "dit_s32_p2_q8.dcw", f.read())
    # a small UNet (tests/data/unet/sd2_linear) in q8
    out = os.path.join(tmp, "fuzz_unet_q8.dcw")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert", "convert.py"),
                    os.path.join(ROOT, "tests", "data", "unet", "sd2_linear"), "--family", "unet", "--dtype", "q8",
                    "-o", out], check=True, capture_output=True)
    with open(out, "rb") as f:
        put("weights", "unet_sd2_linear_q8.dcw", f.read())
    with open(os.path.join(tmp, "test.dcw"), "rb") as f:
        good = f.read()
    put("weights", "damaged_truncated.dcw", good[:len(good) // 2])          # size field disagrees
    put("weights", "damaged_magic.dcw", b"DCWEIGHX" + good[8:])               # bad magic
    put("weights", "damaged_version.dcw", good[:8] + struct.pack("<I", 2) + good[12:])
    put("weights", "damaged_odd_length.dcw", good + b"\0")                    # not a multiple of 8


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:  # np.lib.format writes versions 2 and 3 on request
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def npy():
    rng = np.random.default_rng(7)
    put("npy", "f32_2x3.npy", npy_bytes(rng.standard_normal((2, 3)).astype(np.float32)))
    put("npy", "f64_4.npy", npy_bytes(rng.standard_normal(4)))
    put("npy", "i32_2x2x2.npy", npy_bytes(np.arange(8, dtype=np.int32).reshape(2, 2, 2)))
    put("npy", "i64_scalar.npy", npy_bytes(np.array(5, dtype=np.int64)))
    put("npy", "f32_empty.npy", npy_bytes(np.zeros((0, 3), np.float32)))
    put("npy", "f32_8d.npy", npy_bytes(np.zeros((1,) * 8, np.float32)))
    put("npy", "v2.npy", npy_bytes(np.ones(3, np.float32), version=(2, 0)))
    put("npy", "v3.npy", npy_bytes(np.ones(3, np.float32), version=(3, 0)))
    put("npy", "fortran.npy", npy_bytes(np.asfortranarray(np.ones((2, 3), np.float32))))
    put("npy", "big_endian.npy", npy_bytes(np.ones(2, ">f4")))
    put("npy", "u8.npy", npy_bytes(np.ones(2, np.uint8)))
    good = npy_bytes(np.arange(6, dtype=np.float32))
    put("npy", "damaged_truncated.npy", good[:-5])
    put("npy", "damaged_header_len.npy", good[:8] + b"\xff\xff" + good[10:])


def image():
    from PIL import Image
    src = os.path.join(ROOT, "tests", "data", "images")
    for name in ("rgb_16x12.bmp", "grey_20x50.png", "palette_40x24.png", "rgba_33x33.png",
                 "grey16_24x18.png", "photo_70x52.jpg"):
        with open(os.path.join(src, name), "rb") as f:
            put("image", name, f.read())
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    for fmt, ext, kw in (("GIF", "gif", {}), ("PPM", "ppm", {}), ("TGA", "tga", {}),
                         ("JPEG", "progressive.jpg", {"progressive": True, "quality": 70}),
                         ("PNG", "interlaced.png", {"interlace": 1})):
        b = io.BytesIO()
        (rgb.convert("P") if fmt == "GIF" else rgb).save(b, fmt, **kw)
        put("image", "small." + ext, b.getvalue())
    b = io.BytesIO()
    rgb.convert("L").save(b, "PPM")  # a PGM (P5)
    put("image", "small_grey.pgm", b.getvalue())
    with open(os.path.join(src, "rgb_45x31.png"), "rb") as f:
        png = f.read()
    put("image", "damaged_truncated.png", png[:len(png) // 2])
    # a header that claims 100000 x 100000 pixels (over dc's limit)
    put("image", "damaged_huge.ppm", b"P6\n100000 100000\n255\n" + bytes(30))


def tokenizer(tmp):
    lines = []
    with open(os.path.join(tmp, "tokenizer_prompts.txt")) as f:
        lines += [bytes.fromhex(l.split("\t")[0]) for l in f if l.strip()]
    with open(os.path.join(ROOT, "tests", "data", "tokenizer", "crosscheck.tsv")) as f:
        lines += [bytes.fromhex(l.split("\t")[0]) for l in f if l.strip()][::8]
    for i, b in enumerate(lines):
        put("tokenizer", f"prompt{i:03d}.txt", b)


def classlist():
    # the first byte picks the function (fuzz/fuzz_classlist.c)
    pres = os.path.join(ROOT, "data", "presets")
    for name in sorted(os.listdir(pres)):
        with open(os.path.join(pres, name), "rb") as f:
            put("classlist", "preset_" + name, b"\x01" + f.read())
    put("classlist", "names.txt", b"\x00# comment\ncat\r\n\ndog  \n  bird\n")
    put("classlist", "samples.txt", b"\x0250,500,1000")
    put("classlist", "argv.txt", b"\x03--samples\x0010,20\x00--keep\x005,1\x00--loss\x00huber"
        b"\x00--class\x00cat\x00--top\x003\x00--alpha\x000.01\x00--stop\x00sequential")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    tmp = sys.argv[1]
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    weights(tmp)
    npy()
    image()
    tokenizer(tmp)
    classlist()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, n)) for n in files)
        print(f"{t}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
