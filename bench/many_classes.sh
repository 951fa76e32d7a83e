#!/bin/sh
# bench/many_classes.sh - stopping rules at 10, 100 and 1,000 classes,
# simulated from a shipped model's real errors (bench/many_classes.c says
# how): a bank of every class's error at 50 timesteps on the 200
# validation images (test images outside the reported subset), then the
# exhaustive rule, the t-test, the calibrated and the screened rule on the
# same simulated images. Deterministic: no timing is measured.
#
# usage: bench/many_classes.sh [MODEL...]   (default: both shipped models;
#        env PER: simulated images per size, default 1000)
set -e
cd "$(dirname "$0")/.."
: "${PER:=1000}"
make -s build/release/many_classes build/release/libdc.so
mkdir -p build/bank
for model in ${*:-data/models/fmnist-dit.dcw data/models/fmnist-sd.dcw}; do
    name=$(basename "$model" .dcw)
    [ -f build/bank/$name-errors.npy ] ||
        DC_LIBRARY=build/release/libdc.so /usr/bin/python3 bench/error_bank.py "$model" data/fmnist_val_200.txt build/bank/$name
    cal=data/calibration/$name.txt
    for mode in --from-right ""; do
        build/release/many_classes build/bank/$name "$cal" "$PER" $mode
    done
done
