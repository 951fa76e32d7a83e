#!/bin/bash
# bench/sdcpp_bench.sh - the SD 1.5 UNet in stable-diffusion.cpp (ggml), for
# comparison with bench/sd_bench.sh, on the same seeded random weights.
#
# stable-diffusion.cpp is not part of dc and nothing of it is in this
# repository: build it yourself (CPU backend; the figures in bench/README.md
# used leejet/stable-diffusion.cpp 97d2990 with ggml 8e800ce, `cmake -S src
# -B build -DCMAKE_BUILD_TYPE=Release -DSD_SERVER_BUILD_FRONTEND=OFF
# -DSD_WEBP=OFF -DSD_WEBM=OFF`, gcc 12, GGML_NATIVE on) and point SDCPP at
# the folder holding build/bin/sd-cli.
#
# The model: bench/models/sd15-random (bench/make_random_sd.py, made by
# bench/sd_bench.sh) converted by sd.cpp's own converter to f16 (its usual
# policy: f16 weights, f32 biases). sd.cpp has no UNet-only mode, so this
# runs txt2img with STEPS euler steps at cfg-scale 1 (sd.cpp then skips the
# unconditional pass: one UNet eval per step) and reads the last step's
# time from its progress lines (the first step also loads the weights).
# Peak RSS is the whole process: text encoder, UNet, VAE incl. decoder.
#
# usage: SDCPP=/path/to/stable-diffusion.cpp bench/sdcpp_bench.sh [SIZE...]   (default 256 512)
#        env THREADS (all cores), STEPS (3), EXTRA (more sd-cli options, e.g. --diffusion-fa)
set -u
cd "$(dirname "$0")/.."
: "${SDCPP:=/tmp/sdcpp}" "${THREADS:=$(nproc)}" "${STEPS:=3}" "${EXTRA:=}"
SD=$SDCPP/build/bin/sd-cli
MODEL=bench/models/sd15-random-sdcpp-f16.safetensors
LOGS=build/sdcpp
SIZES=${*:-256 512}
[ -x "$SD" ] || { echo "no $SD: build stable-diffusion.cpp and set SDCPP (see the top of $0)"; exit 1; }
[ -d bench/models/sd15-random ] || { echo "no bench/models/sd15-random: run bench/sd_bench.sh first"; exit 1; }
mkdir -p $LOGS
[ -f "$MODEL" ] || "$SD" -M convert -m bench/models/sd15-random -o "$MODEL" --type f16 --convert-name -t "$THREADS" \
    > $LOGS/convert.log 2>&1 || { echo "conversion failed: $LOGS/convert.log"; exit 1; }
echo "stable-diffusion.cpp ($SD), f16, $THREADS threads, $STEPS euler steps, cfg 1 $EXTRA, $(date -u +%Y-%m-%d)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %14s %14s %14s\n" size "s/UNet eval" "first step s" "peak RSS MB"
for S in $SIZES; do
    log=$LOGS/txt2img_$S.log
    /usr/bin/time -v -o $LOGS/time_$S.txt "$SD" -m "$MODEL" -p "a photo of a cat" -W "$S" -H "$S" \
        --steps "$STEPS" -t "$THREADS" --cfg-scale 1 --sampling-method euler --seed 42 \
        -o $LOGS/out_$S.png -v $EXTRA > "$log" 2>&1
    rc=$?
    # progress lines "k/STEPS - X.XXs/it" (or "it/s") between "sampling using" and "sampling completed"
    steps=$(tr '\r' '\n' < "$log" | sed -n '/sampling using/,/sampling completed/p' |
            grep -oE "[0-9]+/$STEPS - [0-9.]+(s/it|it/s)")
    secs() { awk '{ split($3, a, /s\/it|it\/s/); v = a[1]; if ($3 ~ /it\/s/) v = 1 / v; printf "%.3f", v }'; }
    last=$(echo "$steps" | grep -E "^$STEPS/$STEPS" | tail -1 | secs)
    first=$(echo "$steps" | grep -E "^1/$STEPS" | tail -1 | secs)
    rss=$(awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }' $LOGS/time_$S.txt)
    printf "%-6s %14s %14s %14s\n" "$S" "${last:-n/a}" "${first:-n/a}" "${rss:-n/a}"
    [ $rc -eq 0 ] || echo "  (sd-cli exited with $rc: see $log)"
done
