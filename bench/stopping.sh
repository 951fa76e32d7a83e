#!/bin/sh
# bench/stopping.sh - stopping rules on a trained model: evaluations per
# image and top-1 of the paper's fixed adaptive schedule (samples 50,500,
# keep 5,1), the paired t-test of Clark & Jaini (--stop sequential) and
# dc's calibrated rule (--stop calibrated: the same test on timesteps drawn
# by the spread measured on 200 training images and stored in the model,
# weighted back to the plain mean) and its screened form for many classes
# (--stop screened: a z-test on the calibrated spread drops classes before
# the t-test can), all on the same Fashion-MNIST test images, same seed,
# same machine.
#
# usage: bench/stopping.sh MODEL.dcw [N]   (N: the first N images of
#        SUBSET, default 300; env THREADS, RULES, SUBSET)
# SUBSET defaults to data/fmnist_subset_2000.txt, the reporting subset;
# data/fmnist_val_200.txt holds 200 other test images (20 per class) for
# choosing a rule's settings without looking at the reported images.
# A rule may carry options after commas: "calibrated,min-scores=10" runs
# --stop calibrated --min-scores 10; "calibrated,calibration=FILE" uses a
# calibration from dc calibrate (unlabelled images) instead of the model's;
# "calibrated,max-evals=60" stops every image at 60 evaluations.
# Results go to build/stopping/<model>-<rule>-<subset>-<N>.jsonl; a stopped
# run resumes.
set -e
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/stopping.sh MODEL.dcw [N]}
N=${2:-300}
: "${THREADS:=$(nproc)}" "${RULES:=adaptive sequential calibrated screened}" "${SUBSET:=data/fmnist_subset_2000.txt}"
D=/usr/share/datasets/fashion-mnist
OUT=build/stopping
mkdir -p $OUT
name=$(basename "$MODEL" .dcw)
echo "stopping rules on $MODEL: first $N images of $SUBSET, $THREADS threads, $(date -u +%Y-%m-%d)"
printf "%-26s %6s %8s %12s %10s %14s\n" rule images top-1 evals/image s/image "evals vs paper"
paper=""
for rule in $RULES; do
    stop=${rule%%,*}
    opts=$(echo "$rule" | sed -n 's/^[^,]*,//p' | tr ',' '\n' | sed 's/^/--/; s/=/ /' | tr '\n' ' ')
    res=$OUT/$name-$(echo "$rule" | tr ',=/' '___')-$(basename "$SUBSET" .txt)-$N.jsonl
    line=$(./dc --threads "$THREADS" eval -m "$MODEL" $D/t10k-images-idx3-ubyte.gz $D/t10k-labels-idx1-ubyte.gz \
        --subset "$SUBSET" --limit "$N" --stop "$stop" $opts --results "$res" --json --quiet | tail -1)
    evals=$(echo "$line" | sed 's/.*"evals_per_image": \([0-9.]*\).*/\1/')
    top1=$(echo "$line" | sed 's/.*"top1": \([0-9.]*\).*/\1/')
    secs=$(echo "$line" | sed 's/.*"seconds_per_image": \([0-9.]*\).*/\1/')
    n=$(echo "$line" | sed 's/.*"n": \([0-9]*\).*/\1/')
    [ "$rule" = adaptive ] && paper=$evals
    ratio=$( [ -n "$paper" ] && [ "$rule" != adaptive ] && awk -v p="$paper" -v e="$evals" 'BEGIN { printf "%.1fx fewer", p / e }' || echo "-")
    printf "%-26s %6s %8s %12s %10s %14s\n" "$rule" "$n" "$top1" "$evals" "$secs" "$ratio"
done
