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
# usage: bench/dit_bench.sh     (env: SIZES="256 512" BATCHES="1 16" REPS=2
#                                      DTYPES="f32 f16 q8" THREADS=all cores)
set -e
cd "$(dirname "$0")/.."
: "${SIZES:=256 512}" "${BATCHES:=1 16}" "${REPS:=2}" "${DTYPES:=f32 f16 q8}"
: "${THREADS:=$(nproc)}" "${PYTHON:=/usr/bin/python3}"
export OMP_NUM_THREADS=$THREADS
B=build/release
make -s $B/dit_bench >/dev/null
mkdir -p bench/models
echo "DiT-XL/2 bench: $(date -u +%Y-%m-%d), $(nproc) cores, $THREADS threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(./dc blas | head -1)"
for size in $SIZES; do
    st=bench/models/DiT-XL-2-${size}x${size}.safetensors
    [ -f "$st" ] || $PYTHON bench/make_random_dit.py bench/models --size "$size" >/dev/null
    for dt in $DTYPES; do
        out=bench/models/dit-xl2-$size-$dt.dcw
        [ -f "$out" ] || $PYTHON tools/convert/convert.py "$st" --family dit --dtype "$dt" -o "$out" >/dev/null
    done
    for n in $BATCHES; do
        for dt in $DTYPES; do
            $B/dit_bench bench/models/dit-xl2-$size-$dt.dcw "$n" "$REPS"
        done
        $PYTHON bench/dit_torch.py "$st" "$n" "$REPS" "$THREADS"
    done
done
