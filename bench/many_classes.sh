#!/bin/sh
# bench/many_classes.sh - stopping rules at 10, 100 and 1,000 classes,
# replayed on a bank of a model's real errors (bench/error_bank.py: every
# class of each image at a shared grid of timesteps) by bench/many_classes.c:
# the exhaustive rule, the paper's ImageNet stages (1,000 classes), the
# t-test, the calibrated and the screened rule, and the screened rule held
# to 5 evaluations per class, on the same images. Deterministic: no timing.
#
# A 10-class model (the shipped Fashion-MNIST ones) reaches 100 and 1,000
# classes by borrowing wrong classes from other images: a simulation. The
# 1,000-class glyphs model (docs/glyphs1k.md) needs none: its rows are the
# rules measured on real classes, and a second run simulates its 1,000
# classes from 10 of each image's (the true one and 9 drawn), as the
# Fashion-MNIST rows are made, to check the simulation against the real thing.
#
# usage: bench/many_classes.sh [MODEL...]   (default: both shipped Fashion-MNIST
#        models; env PER: simulated images per size, default 1000;
#        GLYPH_GRID: the glyphs bank's timesteps per class, default 20)
set -e
cd "$(dirname "$0")/.."
: "${PER:=1000}" "${GLYPH_GRID:=20}"
make -s build/release/many_classes build/release/libdc.so
mkdir -p build/bank
for model in ${*:-data/models/fmnist-dit.dcw data/models/fmnist-sd.dcw}; do
    name=$(basename "$model" .dcw)
    cal=data/calibration/$name.txt
    case $name in
    glyphs1k*)
        [ -d build/glyphs1k/test ] || { echo "many_classes: build/glyphs1k/test is missing (make glyphs1k)" >&2; exit 1; }
        [ -f build/bank/$name-errors.npy ] ||
            DC_LIBRARY=build/release/libdc.so /usr/bin/python3 bench/error_bank.py "$model" \
                data/glyphs1k_test_100.txt build/bank/$name --data build/glyphs1k/test --grid "$GLYPH_GRID" --batch 250
        build/release/many_classes build/bank/$name "$cal" "$PER"
        /usr/bin/python3 - build/bank/$name build/bank/$name-10 <<'PY'
import sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
e, lab = np.load(src + "-errors.npy"), np.load(src + "-labels.npy")
g = np.random.default_rng(0)
sub = np.empty((e.shape[0], 10, e.shape[2]), np.float32)
for i in range(e.shape[0]):  # the true class first, then 9 others drawn
    others = g.choice(np.delete(np.arange(e.shape[1]), lab[i]), 9, replace=False)
    sub[i] = e[i, np.concatenate([[lab[i]], others])]
np.save(dst + "-errors.npy", sub)
np.save(dst + "-labels.npy", np.zeros(e.shape[0], np.int32))
np.save(dst + "-timesteps.npy", np.load(src + "-timesteps.npy"))
PY
        build/release/many_classes build/bank/$name-10 "$cal" "$PER" --from-right
        ;;
    *)
        [ -f build/bank/$name-errors.npy ] ||
            DC_LIBRARY=build/release/libdc.so /usr/bin/python3 bench/error_bank.py "$model" data/fmnist_val_200.txt build/bank/$name
        for mode in --from-right ""; do
            build/release/many_classes build/bank/$name "$cal" "$PER" $mode
        done
        ;;
    esac
done
