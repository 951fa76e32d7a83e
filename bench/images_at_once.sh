#!/bin/sh
# bench/images_at_once.sh - the main job (`dc classify data/samples/*.png`)
# and `dc eval` on both shipped models, with the binary built from BASE
# (default main: the reference) and this tree's build/release/dc, in one
# run: each repetition runs every job with both binaries, the order
# alternating, so the machine's load falls on both alike. Prints each run's
# elapsed, user and system seconds, then the medians, images per second and
# the speed-up, and checks that both binaries made the same decisions with
# the same evaluation counts (every output field but the seconds).
#
# usage: bench/images_at_once.sh   (env BASE=git-ref, REPS=3, N=24 eval images,
#        NICE=-10 to run both binaries ahead of the machine's other work:
#        as root, on a shared machine, for figures nearer a quiet one's)
set -e
cd "$(dirname "$0")/.."
BASE=${BASE:-main}
REPS=${REPS:-3}
N=${N:-24}
NICE=${NICE:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=build/images_at_once
D=/usr/share/datasets/fashion-mnist
mkdir -p $OUT
# the reference: BASE's sources built in a folder of their own
OLD=$OUT/base/build/release/dc
ref=$(git rev-parse "$BASE")
if [ ! -x $OLD ] || [ "$(cat $OUT/base.ref 2>/dev/null)" != "$ref" ]; then
    rm -rf $OUT/base
    mkdir -p $OUT/base
    git archive "$ref" | tar -x -C $OUT/base
    make -s -C $OUT/base build/release/dc >/dev/null
    echo "$ref" >$OUT/base.ref
fi
make -s build/release/dc >/dev/null
NEW=build/release/dc

echo "images_at_once: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "old: $BASE ($(echo $ref | cut -c1-10)); new: $(git rev-parse --short=10 HEAD)$(git diff --quiet HEAD -- . || echo ' + uncommitted changes')"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); vector units:$(grep -m1 '^flags' /proc/cpuinfo |
    tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16)$' | tr '\n' ' ' | sed 's/^/ /')"
echo "nice: $NICE (both binaries alike)"
echo "openblas: $($NEW blas | sed -n 's/openblas core: *//p') kernels (as dc picks them), $($NEW blas | sed -n 's/threads: *//p') threads"

images=$(ls data/samples/*.png)
n_samples=$(echo $images | wc -w)
run() { # job, binary label, binary: one timed run, output in $OUT/JOB-LABEL.out
    job=$1 label=$2 bin=$3
    f=$OUT/$job-$label
    case $job in
    classify) set -- $bin classify --stop calibrated --json --quiet $images ;;
    eval-sd | eval-dit)
        rm -f $f.jsonl
        set -- $bin eval -m data/models/fmnist-${job#eval-}.dcw $D/t10k-images-idx3-ubyte.gz \
            $D/t10k-labels-idx1-ubyte.gz --limit $N --stop calibrated --quiet --results $f.jsonl ;;
    esac
    nice -n $NICE /usr/bin/time -f "%e %U %S" -o $f.time "$@" >$f.out 2>$f.err || { cat $f.err; exit 1; }
    echo "$job $label $(cat $f.time)" >>$OUT/times
    # what must not change: the decisions, evaluation counts and errors (the
    # fields both binaries write; fields a newer binary adds are left out;
    # eval rows sorted, as workers finish them in any order)
    if [ $job = classify ]; then $PYTHON bench/result_key.py <$f.out >$f.key
    else grep '"index"' $f.jsonl | $PYTHON bench/result_key.py | sort >$f.key; fi
}
: >$OUT/times
rep=1
while [ $rep -le $REPS ]; do
    for job in classify eval-sd eval-dit; do
        if [ $((rep % 2)) = 1 ]; then run $job old $OLD; run $job new $NEW
        else run $job new $NEW; run $job old $OLD; fi
        cmp -s $OUT/$job-old.key $OUT/$job-new.key || {
            echo "$job: the old and new binaries disagree (diff $OUT/$job-old.key $OUT/$job-new.key)"
            exit 1
        }
    done
    rep=$((rep + 1))
done
echo "each run (job binary elapsed user system, seconds):"
sed 's/^/  /' $OUT/times
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians of $REPS runs (same decisions and evaluation counts from both binaries, checked each run):"
# the median of each column on its own
for job in classify eval-sd eval-dit; do
    for label in old new; do
        col() { grep "^$job $label " $OUT/times | awk -v c=$1 '{print $c}' | sort -n |
            awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
        echo "$job $label $(col 3) $(col 4) $(col 5)"
    done
done | awk -v ns=$n_samples -v ne=$N '
    { n = $1 == "classify" ? ns : ne
      printf "  %-9s %s  elapsed %6.2f s  user %6.2f s  system %5.2f s (%4.1f%% of user)  %.2f images/s\n",
             $1, $2, $3, $4, $5, 100 * $5 / $4, n / $3
      if ($2 == "old") old = $3; else printf "  %-9s speed-up %.2fx\n", $1, old / $3 }'
