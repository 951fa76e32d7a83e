#!/usr/bin/env python3
"""tools/train/make_glyphs1k.py - builds glyphs1k, a 1,000-class data set of
Chinese characters rendered from Debian's fonts (one character = one class,
one font = one writer), split by font family so the test fonts are never seen
in training.

    make_glyphs1k.py [--out build/glyphs1k] [--classes data/classes/glyphs1k.txt]
                     [--choose] [--train-copies 4] [--test-copies 2]

Every run recounts the characters (fortunes-zh, Han only, most frequent
first, ties by code point), takes the first 1,000 that every font used has a
real glyph for, and stops if the committed class list differs; --choose
rewrites the list instead.

Every image is 32x32 grey, black glyph on white, rendered 4x supersampled and
box-averaged down. Augmentation is drawn per (font, character, copy) from a
random.Random seeded with the first 8 bytes of sha256 of those three, so each
file depends on nothing but its own name and the fonts: a rebuild is byte for
byte the same (the README's manifest hash says whether it is).
"""
import argparse
import collections
import hashlib
import math
import os
import random
import re
import sys
import time

import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FORTUNES = ["/usr/share/games/fortunes/chinese", "/usr/share/games/fortunes/tang300",
            "/usr/share/games/fortunes/song100"]
ARPHIC, WQY, NOTO = "/usr/share/fonts/truetype/arphic", "/usr/share/fonts/truetype/wqy", "/usr/share/fonts/opentype/noto"
# (writer, file, the face's family name as Pillow reports it, Debian package, split).
# The split is by family: Arphic Ming (uming, gbsn00lp) and WenQuanYi Zen Hei are the test writers.
NOTO_SANS = ["Thin", "Light", "DemiLight", "Regular", "Medium", "Bold", "Black"]
NOTO_SERIF = ["ExtraLight", "Light", "Regular", "Medium", "SemiBold", "Bold", "Black"]
NOTO_CORE = {"Regular", "Bold"}  # in fonts-noto-cjk; the other weights are in fonts-noto-cjk-extra
FONTS = [
    ("ukai-cn", f"{ARPHIC}/ukai.ttc", "AR PL UKai CN", "fonts-arphic-ukai", "train"),
    ("gkai00mp", f"{ARPHIC}-gkai00mp/gkai00mp.ttf", "AR PL KaitiM GB", "fonts-arphic-gkai00mp", "train"),
    ("wqy-microhei", f"{WQY}/wqy-microhei.ttc", "WenQuanYi Micro Hei", "fonts-wqy-microhei", "train"),
] + [(f"noto-sans-{w.lower()}", f"{NOTO}/NotoSansCJK-{w}.ttc", "Noto Sans CJK SC",
      "fonts-noto-cjk" if w in NOTO_CORE else "fonts-noto-cjk-extra", "train") for w in NOTO_SANS] + [
    (f"noto-serif-{w.lower()}", f"{NOTO}/NotoSerifCJK-{w}.ttc", "Noto Serif CJK SC",
     "fonts-noto-cjk" if w in NOTO_CORE else "fonts-noto-cjk-extra", "train") for w in NOTO_SERIF] + [
    ("uming-cn", f"{ARPHIC}/uming.ttc", "AR PL UMing CN", "fonts-arphic-uming", "test"),
    ("gbsn00lp", f"{ARPHIC}-gbsn00lp/gbsn00lp.ttf", "AR PL SungtiL GB", "fonts-arphic-gbsn00lp", "test"),
    ("wqy-zenhei", f"{WQY}/wqy-zenhei.ttc", "WenQuanYi Zen Hei", "fonts-wqy-zenhei", "test"),
]
# Big5 (traditional) fonts: their coverage of the list is measured and reported, they are not used
BIG5_FONTS = [
    ("bkai00mp", f"{ARPHIC}-bkai00mp/bkai00mp.ttf", "AR PL KaitiM Big5", "fonts-arphic-bkai00mp", None),
    ("bsmi00lp", f"{ARPHIC}-bsmi00lp/bsmi00lp.ttf", "AR PL Mingti2L Big5", "fonts-arphic-bsmi00lp", None),
]
N_CLASSES = 1000
SIZE, SUPER = 32, 4
CANVAS = SIZE * SUPER  # 128: every render and transform happens here, then a 4x4 box average
EM = 100               # the font size on the canvas, before augmentation: the em box is ~78% of the image
NOT_A_CHARACTER = ["\ue000", "\U0010ffff"]  # private use / unassigned: what a font draws when it lacks a glyph
PNG_OPTIONS = dict(format="PNG", optimize=False, compress_level=9)


def open_face(path, family, size):
    """The face of a font collection whose family name is `family` (a .ttc holds several)."""
    for index in range(16):
        try:
            font = ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC)
        except OSError:
            break
        if font.getname()[0] == family:
            return font, index
    sys.exit(f"{path}: no face named {family!r}")


def count_han(paths):
    """Han characters (U+4E00..U+9FFF) in the texts, ANSI colour escapes removed."""
    ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
    counts = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = ansi.sub("", f.read())
        counts.update(c for c in text if "\u4e00" <= c <= "\u9fff")
    return counts


def coverage_render(font, ch):
    im = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(im).text((4, 4), ch, font=font, fill=0)
    return im.tobytes()


class Coverage:
    """Whether a font has a real glyph: its render differs from the font's render of code points
    no font assigns, and is not empty."""

    def __init__(self, path, family):
        self.font, self.index = open_face(path, family, 48)
        self.missing = {coverage_render(self.font, c) for c in NOT_A_CHARACTER}
        self.missing.add(Image.new("L", (64, 64), 255).tobytes())

    def has(self, ch):
        return coverage_render(self.font, ch) not in self.missing


def choose(counts, fonts):
    """The N_CLASSES most frequent characters every font has, and per font the characters it
    lacks among those tried on the way."""
    cov = [Coverage(path, family) for _, path, family, _, _ in fonts]
    ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))
    chosen, lacking = [], {f[0]: [] for f in fonts}
    for ch in ranked:
        ok = True
        for (name, *_), c in zip(fonts, cov):
            if not c.has(ch):
                lacking[name].append(ch)
                ok = False
        if ok:
            chosen.append(ch)
            if len(chosen) == N_CLASSES:
                break
    return chosen, lacking, ranked.index(chosen[-1]) + 1


def base_render(font, ch):
    """The glyph at EM pixels on the 128x128 canvas, its ink box centred."""
    im = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = draw.textbbox((0, 0), ch, font=font)
    draw.text(((CANVAS - (x0 + x1)) / 2, (CANVAS - (y0 + y1)) / 2), ch, font=font, fill=0)
    return im


def seed_of(font_name, ch, copy):
    return int.from_bytes(hashlib.sha256(f"{font_name}\0{ch}\0{copy}".encode()).digest()[:8], "big")


def augment(base, rng):
    """One copy: scale, rotation and shift (one affine map about the centre), then stroke weight,
    then the 4x4 box average to 32x32."""
    scale = rng.uniform(0.85, 1.1)
    angle = math.radians(rng.uniform(-4.0, 4.0))
    dx, dy = rng.uniform(-2.0, 2.0) * SUPER, rng.uniform(-2.0, 2.0) * SUPER  # in output pixels x4
    stroke = rng.choices(["thin", "none", "bold", "bolder"], weights=[1, 3, 2, 1])[0]
    # output pixel p maps from input C + R(-angle) (p - C - d) / scale: the inverse of the forward map
    c = CANVAS / 2
    ca, sa = math.cos(angle) / scale, math.sin(angle) / scale
    a, b, d, e = ca, sa, -sa, ca
    tx, ty = -c - dx, -c - dy
    im = base.transform((CANVAS, CANVAS), Image.AFFINE,
                        (a, b, a * tx + b * ty + c, d, e, d * tx + e * ty + c),
                        resample=Image.BICUBIC, fillcolor=255)
    if stroke == "bold":
        im = im.filter(ImageFilter.MinFilter(3))   # black grows by one canvas pixel (1/4 output pixel) a side
    elif stroke == "bolder":
        im = im.filter(ImageFilter.MinFilter(5))
    elif stroke == "thin":
        thinner = im.filter(ImageFilter.MaxFilter(3))
        # hairline faces (Noto Thin, ExtraLight) would lose strokes: thin only where half the ink stays
        if ink(thinner) * 2 >= ink(im):
            im = thinner
    return im.resize((SIZE, SIZE), Image.BOX)


def ink(im):
    return sum(i * (255 - v) for v, i in zip(range(256), im.histogram()))


def write_split(out, split, fonts, chars, copies):
    n = 0
    for ch in chars:
        os.makedirs(os.path.join(out, split, ch), exist_ok=True)
    for fi, (name, path, family, _, _) in enumerate(fonts):
        font, _ = open_face(path, family, EM)
        for ch in chars:
            base = base_render(font, ch)
            for copy in range(copies):
                im = augment(base, random.Random(seed_of(name, ch, copy)))
                im.save(os.path.join(out, split, ch, f"{fi * copies + copy:04d}.png"), **PNG_OPTIONS)
                n += 1
        print(f"  {split}: {name} done ({n} images)", flush=True)
    return n


def manifest(out):
    """'sha256  path' for every PNG, paths sorted by their UTF-8 bytes: the same files give the same text."""
    lines = []
    for split in ("train", "test"):
        for root, _, files in os.walk(os.path.join(out, split)):
            for f in files:
                p = os.path.join(root, f)
                with open(p, "rb") as fh:
                    lines.append((os.path.relpath(p, out).encode(), hashlib.sha256(fh.read()).hexdigest()))
    lines.sort()
    return "".join(f"{h}  {p.decode()}\n" for p, h in lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="build/glyphs1k")
    p.add_argument("--classes", default="data/classes/glyphs1k.txt")
    p.add_argument("--choose", action="store_true", help="recount and rewrite the class list")
    p.add_argument("--train-copies", type=int, default=4)
    p.add_argument("--test-copies", type=int, default=2)
    a = p.parse_args()
    t0 = time.time()
    counts = count_han(FORTUNES)
    print(f"fortunes-zh: {sum(counts.values())} Han characters, {len(counts)} distinct")
    chosen, lacking, tried = choose(counts, FONTS)
    print(f"the first {N_CLASSES} every font has are among the {tried} most frequent; lacking among those:")
    for name, miss in lacking.items():
        if miss:
            print(f"  {name}: {len(miss)} {''.join(miss)}")
    if a.choose:
        with open(a.classes, "w", encoding="utf-8") as f:
            f.write("".join(c + "\n" for c in chosen))
    with open(a.classes, encoding="utf-8") as f:
        chars = [line.rstrip("\n") for line in f if line.strip()]
    if chars != chosen:
        sys.exit(f"{a.classes} is not the list these fonts and texts give (other package versions?): "
                 "--choose rewrites it")
    assert len(chars) == N_CLASSES and len(set(chars)) == N_CLASSES, f"{a.classes}: want {N_CLASSES} distinct"
    big5 = []
    for name, path, family, package, _ in BIG5_FONTS:
        cov = Coverage(path, family)
        big5.append((name, package, sum(not cov.has(c) for c in chars)))
        print(f"{name} ({package}, Big5): lacks {big5[-1][2]} of the {N_CLASSES} characters: not used")
    faces = {}
    for name, path, family, package, split in FONTS:
        faces[name] = open_face(path, family, EM)[1]
        print(f"{split:5s} {name:20s} {package:24s} {os.path.basename(path)} face {faces[name]} ({family})")
    train = [f for f in FONTS if f[4] == "train"]
    test = [f for f in FONTS if f[4] == "test"]
    n_train = write_split(a.out, "train", train, chars, a.train_copies)
    n_test = write_split(a.out, "test", test, chars, a.test_copies)
    text = manifest(a.out)
    with open(os.path.join(a.out, "manifest.sha256"), "w", encoding="utf-8") as f:
        f.write(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    write_readme(a, counts, (lacking, tried), faces, big5, train, test, n_train, n_test, digest)
    print(f"{n_train} train + {n_test} test images in {time.time() - t0:.0f} s; manifest sha256 {digest}")


def write_readme(a, counts, losses, faces, big5, train, test, n_train, n_test, digest):
    lacking, tried = losses
    lost = "; ".join(f"{n} lacks {len(m)} ({''.join(m)})" for n, m in lacking.items() if m) or "none lacks any"
    def rows(fonts, copies):
        return "".join(f"| {i * copies:04d}-{i * copies + copies - 1:04d} | {name} | {family} | "
                       f"{os.path.basename(path)} face {faces[name]} | {package} |\n"
                       for i, (name, path, family, package, _) in enumerate(fonts))
    head = "| files | writer | face | file | Debian package |\n|---|---|---|---|---|\n"
    text = f"""# glyphs1k

1,000 classes, one per Chinese character; one font (face and weight) is one writer.
Made by `make glyphs1k` (tools/train/make_glyphs1k.py) from Debian's fonts alone.

- Images: 32x32 grey PNG, black glyph on white, rendered at 128x128 and box-averaged down.
  Augmentation per (font, character, copy), seeded by sha256 of the three: scale 0.85-1.1,
  rotation within 4 degrees, shift within 2 pixels, stroke weight (thinner, as drawn, bolder, bolder still).
- Classes: {a.classes}, one character a line; the folders train/CHAR/ and test/CHAR/ are named by it.
  They are the 1,000 most frequent Han characters (U+4E00..U+9FFF, ties by code point) in
  fortunes-zh's chinese, tang300 and song100 ({sum(counts.values())} Han characters, {len(counts)} distinct),
  among those every font below has a real glyph for: the first 1,000 of the {tried} most frequent
  ({lost}). A font lacks a character where its render equals its render of U+E000 or U+10FFFF, or is empty.
- Split by font family: the test writers are never seen in training.
- train: {len(train)} writers x {a.train_copies} copies x 1,000 = {n_train} images
- test: {len(test)} writers x {a.test_copies} copies x 1,000 = {n_test} images

## Train writers

{head}{rows(train, a.train_copies)}
## Test writers

{head}{rows(test, a.test_copies)}
Not used: {"; ".join(f"{n} ({p}, a Big5 font) lacks {m} of the 1,000" for n, p, m in big5)}.

## Rebuild

    make glyphs1k

manifest.sha256 lists every file's sha256; its own sha256 is

    {digest}

A rebuild with the same fonts and Pillow ({PIL.__version__} here) gives the same hash.
"""
    with open(os.path.join(a.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
