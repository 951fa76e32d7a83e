#!/bin/sh
# bench/stopping.sh - stopping rules on a trained model: evaluations per
# image and top-1 of the paper's fixed adaptive schedule (samples 50,500,
# keep 5,1), the paired t-test of Clark & Jaini (--stop sequential) and
# dc's calibrated rule (--stop calibrated: the same test, timesteps visited
# by the spread measured on 200 training images and stored in the model),
# all on the same Fashion-MNIST test images, same seed, same machine.
#
# usage: bench/stopping.sh MODEL.dcw [N]   (N: the first N images of
#        data/fmnist_subset_2000.txt, default 300; env THREADS, RULES)
# Results go to build/stopping/<model>-<rule>.jsonl; a stopped run resumes.
set -e
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/stopping.sh MODEL.dcw [N]}
N=${2:-300}
: "${THREADS:=$(nproc)}" "${RULES:=adaptive sequential calibrated}"
D=/usr/share/datasets/fashion-mnist
OUT=build/stopping
mkdir -p $OUT
name=$(basename "$MODEL" .dcw)
echo "stopping rules on $MODEL: first $N images of data/fmnist_subset_2000.txt, $THREADS threads, $(date -u +%Y-%m-%d)"
printf "%-12s %6s %8s %12s %10s %14s\n" rule images top-1 evals/image s/image "evals vs paper"
paper=""
for rule in $RULES; do
    res=$OUT/$name-$rule-$N.jsonl
    line=$(./dc --threads "$THREADS" eval -m "$MODEL" $D/t10k-images-idx3-ubyte.gz $D/t10k-labels-idx1-ubyte.gz \
        --subset data/fmnist_subset_2000.txt --limit "$N" --stop "$rule" --results "$res" --json --quiet | tail -1)
    evals=$(echo "$line" | sed 's/.*"evals_per_image": \([0-9.]*\).*/\1/')
    top1=$(echo "$line" | sed 's/.*"top1": \([0-9.]*\).*/\1/')
    secs=$(echo "$line" | sed 's/.*"seconds_per_image": \([0-9.]*\).*/\1/')
    n=$(echo "$line" | sed 's/.*"n": \([0-9]*\).*/\1/')
    [ "$rule" = adaptive ] && paper=$evals
    ratio=$( [ -n "$paper" ] && [ "$rule" != adaptive ] && awk -v p="$paper" -v e="$evals" 'BEGIN { printf "%.1fx fewer", p / e }' || echo "-")
    printf "%-12s %6s %8s %12s %10s %14s\n" "$rule" "$n" "$top1" "$evals" "$secs" "$ratio"
done
