#!/bin/sh
# bench/dit_bench.sh - DiT-XL/2 speed and memory, dc next to PyTorch.
#
# Makes seeded random full-size DiT-XL/2 checkpoints (bench/make_random_dit.py,
# real names and shapes) once in bench/models/, converts them with the real
# converter to f32, f16 and q8, then for each size and batch prints dc's
# seconds per forward for each dtype and PyTorch's (Debian's python3-torch,
# float32, no autograd) on the same weights, same threads, same
# OPENBLAS_CORETYPE, in the same run.
#
# Each dtype runs with each compute type in COMPUTES (f32: OpenBLAS sgemm;
# int8: weights packed at load, nn/q8.h's product; the model name gets
# ":int8"), ROUNDS times interleaved (the machine may be shared); with more
# than one round the medians follow, and per file the int8 speedup over f32
# compute. The header names the CPU's vector units and the int8 variant dc
# runs (dc blas), with its quick rates of both products.
#
# usage: bench/dit_bench.sh     (env: SIZES="256 512" BATCHES="1 16" REPS=2
#                                      DTYPES="f32 f16 q8" COMPUTES="f32 int8"
#                                      ROUNDS=1 TORCH=1 THREADS=all cores)
set -e
cd "$(dirname "$0")/.."
: "${SIZES:=256 512}" "${BATCHES:=1 16}" "${REPS:=2}" "${DTYPES:=f32 f16 q8}"
: "${COMPUTES:=f32 int8}" "${ROUNDS:=1}" "${TORCH:=1}"
: "${THREADS:=$(nproc)}" "${PYTHON:=/usr/bin/python3}"
export OMP_NUM_THREADS=$THREADS
# as the dc driver does: threads that spin while waiting lose badly on a busy machine
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
B=build/release
make -s $B/dit_bench >/dev/null
mkdir -p bench/models
echo "DiT-XL/2 bench: $(date -u +%Y-%m-%d), $(nproc) cores, $THREADS threads, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(./dc blas | head -1)"
sh bench/int8_header.sh "$B/dc"
all=$(mktemp)
trap 'rm -f "$all"' EXIT
for size in $SIZES; do
    st=bench/models/DiT-XL-2-${size}x${size}.safetensors
    [ -f "$st" ] || $PYTHON bench/make_random_dit.py bench/models --size "$size" >/dev/null
    for dt in $DTYPES; do
        out=bench/models/dit-xl2-$size-$dt.dcw
        [ -f "$out" ] || $PYTHON tools/convert/convert.py "$st" --family dit --dtype "$dt" -o "$out" >/dev/null
    done
done
for round in $(seq "$ROUNDS"); do
for size in $SIZES; do
    st=bench/models/DiT-XL-2-${size}x${size}.safetensors
    for n in $BATCHES; do
        for dt in $DTYPES; do
            for cp in $COMPUTES; do
                line=$($B/dit_bench bench/models/dit-xl2-$size-$dt.dcw "$n" "$REPS" "$cp")
                echo "$line  load avg $(cut -d' ' -f1 /proc/loadavg)"
                echo "$line" >>"$all"
            done
        done
        [ "$TORCH" = 0 ] || $PYTHON bench/dit_torch.py "$st" "$n" "$REPS" "$THREADS"
    done
done
done
sh bench/int8_medians.sh "$all"
