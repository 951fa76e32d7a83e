#!/bin/sh
# bench/sd_bench.sh - Stable Diffusion UNet speed and memory, dc next to PyTorch.
#
# Makes a seeded random full-size SD pipeline folder (bench/make_random_sd.py:
# real names and shapes, diffusers layout) once in bench/models/, converts it
# with the real converter (convert.py --family sd) to each dtype, then for
# each latent size and batch prints dc's seconds per UNet eval for each dtype
# and PyTorch's (Debian's python3-torch, float32, no autograd) on the same
# weights, same threads, same OPENBLAS_CORETYPE, in the same run. Last, the
# peak RSS of the whole classification path (text encoder, VAE encoder at
# 512 px, UNet) for each dtype in PIPELINE_DTYPES (the target: q8 at most
# 1.6 GB).
#
# Each dtype runs with each compute type in COMPUTES (f32: OpenBLAS sgemm;
# int8: weights packed at load, nn/q8.h's product; the model name gets
# ":int8"), ROUNDS times interleaved (the machine may be shared); with more
# than one round the medians follow, and per file and size the int8 speedup
# over f32 compute. The header names the CPU's vector units and the int8
# variant dc runs (dc blas), with its quick rates of both products.
#
# usage: bench/sd_bench.sh   (env: VERSION=1.5|2.1 SIZES="32 64" BATCHES="1 8"
#                             REPS=2 DTYPES="f32 f16 q8" COMPUTES="f32 int8"
#                             ROUNDS=1 TORCH=1
#                             PIPELINE_DTYPES=q8 (empty: none) PIPELINE_CLASSES=2
#                             PIPELINE_COMPUTES="f32 int8" THREADS=all cores)
set -e
cd "$(dirname "$0")/.."
: "${VERSION:=1.5}" "${SIZES:=32 64}" "${BATCHES:=1 8}" "${REPS:=2}" "${DTYPES:=f32 f16 q8}"
: "${COMPUTES:=f32 int8}" "${ROUNDS:=1}" "${PIPELINE_COMPUTES:=f32 int8}"
: "${TORCH:=1}" "${PIPELINE_DTYPES=q8}" "${PIPELINE_CLASSES:=2}"
: "${THREADS:=$(nproc)}" "${PYTHON:=/usr/bin/python3}"
export OMP_NUM_THREADS=$THREADS
# as the dc driver does: threads that spin while waiting lose badly on a busy machine
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
B=build/release
# the Makefile may not have a rule for sd_bench yet: give make the same one it has for dit_bench
make -s $B/sd_bench >/dev/null 2>&1 || printf '%s\n\t%s\n' '$(B)/sd_bench: $(B)/bench/sd_bench.o $(B)/libdc.a' \
    '$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@' | make -s -f Makefile -f - $B/sd_bench >/dev/null
mkdir -p bench/models
tag=sd$(echo "$VERSION" | tr -d .)
pipe=bench/models/$tag-random
echo "SD $VERSION UNet bench: $(date -u +%Y-%m-%d), $(nproc) cores, $THREADS threads," \
     "load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(./dc blas | head -1)"
sh bench/int8_header.sh "$B/dc"
[ -f "$pipe/model_index.json" ] || $PYTHON bench/make_random_sd.py "$pipe" --version "$VERSION" >/dev/null
for dt in $DTYPES $PIPELINE_DTYPES; do
    out=bench/models/$tag-$dt.dcw
    [ -f "$out" ] || $PYTHON tools/convert/convert.py "$pipe" --family sd --dtype "$dt" -o "$out" >/dev/null
done
first=$(echo $DTYPES $PIPELINE_DTYPES | cut -d' ' -f1)
$B/sd_bench --flops bench/models/$tag-$first.dcw $SIZES
all=$(mktemp)
trap 'rm -f "$all"' EXIT
for round in $(seq "$ROUNDS"); do
for size in $SIZES; do
    gflop=$($B/sd_bench --flops bench/models/$tag-$first.dcw "$size" | sed -nE 's/.*per sample: ([0-9.]+) GFLOP.*/\1/p')
    for n in $BATCHES; do
        lines=""
        for dt in $DTYPES; do
            for cp in $COMPUTES; do
                line=$($B/sd_bench bench/models/$tag-$dt.dcw "$size" "$n" "$REPS" "$cp")
                echo "$line  load avg $(cut -d' ' -f1 /proc/loadavg)"
                echo "$line" >>"$all"
                lines="$lines$line
"
            done
        done
        [ "$TORCH" = 0 ] && continue
        tline=$($PYTHON bench/sd_torch.py "$pipe" "$size" "$n" "$REPS" "$THREADS" --gflop="$gflop")
        echo "$tline"
        # per sample, each dtype against PyTorch (f32) in this run
        tps=$(echo "$tline" | sed -nE 's/.* ([0-9.]+) s\/sample.*/\1/p')
        printf '%s' "$lines" | while read -r _ name _ _ _ _ _ dps _; do
            [ -n "$dps" ] && [ -n "$tps" ] && awk -v d="$dps" -v t="$tps" -v m="$name" -v s="$size" -v b="$n" \
                'BEGIN { printf "ratio  %-28s %3dx%-3d batch %2d  PyTorch / dc per sample: %.2fx\n", m, s, s, b, t / d }'
        done
    done
done
done
sh bench/int8_medians.sh "$all"
for dt in $PIPELINE_DTYPES; do
    for cp in $PIPELINE_COMPUTES; do
        $B/sd_bench --pipeline bench/models/$tag-$dt.dcw "$PIPELINE_CLASSES" 512 "$cp"
    done
done
