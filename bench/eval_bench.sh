#!/bin/sh
# bench/eval_bench.sh - `dc eval` throughput on one machine, in one run:
# images per second for 1 process x 2 threads and for `mpirun -n 2` x 1
# thread on the same images (dynamic distribution, rank 0 computing too),
# and what the durable results file costs: the time spent in fdatasync
# (durable.c's cadence) as a share of the run. The old writer also issued
# one write per row (fprintf + fflush), so the syncs are the whole
# difference; dc keeps them under 1% by construction (DLOG_SYNC_SHARE).
#
# usage: bench/eval_bench.sh [N]   (N images, default 24; env MODEL, ARGS)
# MODEL defaults to the shipped default (Fashion-MNIST SD, --stop
# calibrated); ARGS adds options to every run. Builds build/mpi/dc if needed.
set -e
cd "$(dirname "$0")/.."
N=${1:-24}
: "${MODEL:=data/models/default.dcw}" "${ARGS:=}"
D=/usr/share/datasets/fashion-mnist
OUT=build/eval_bench
mkdir -p $OUT
[ -x build/mpi/dc ] || make -s MPI=1 build/mpi/dc
DC=build/mpi/dc
root=""
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    root=--allow-run-as-root
fi
now() { date +%s.%N; }
run_eval() { # label, then the launcher words; prints images/s, leaves $OUT/LABEL.err
    label=$1
    shift
    rm -f $OUT/$label.jsonl
    t0=$(now)
    "$@" $DC eval -m "$MODEL" $D/t10k-images-idx3-ubyte.gz $D/t10k-labels-idx1-ubyte.gz --limit "$N" $ARGS \
        --results $OUT/$label.jsonl >$OUT/$label.out 2>$OUT/$label.err
    t1=$(now)
    echo "$N $t0 $t1" | awk '{printf "%.3f", $1 / ($3 - $2)}'
}
echo "dc eval bench: $N Fashion-MNIST test images, $MODEL, $(date -u +%Y-%m-%d), $(nproc) cores"
one=$(run_eval p1t2 env OMP_NUM_THREADS=2)
two=$(run_eval p2t1 mpirun $root --oversubscribe -n 2 -x OMP_NUM_THREADS=1)
echo "1 process x 2 threads: $one images/s; 2 ranks x 1 thread: $two images/s ($(echo "$two $one" |
    awk '{printf "%.2f", $1 / $2}')x)"
# "eval: ... disk syncs: K in S s (writes W s, run R s)"
sed -n 's/.*disk syncs: \([0-9]*\) in \([0-9.]*\) s (writes \([0-9.]*\) s, run \([0-9.]*\) s).*/\1 \2 \3 \4/p' \
    $OUT/p1t2.err | awk '{printf "durability (1 x 2 run): %d fdatasync calls, %.4f s = %.3f%% of the %.1f s run (row writes %.4f s, as the old writer)\n", $1, $2, 100 * $2 / $4, $4, $3}'
grep -h 'images per rank' $OUT/p2t1.err || true
