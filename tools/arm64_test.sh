#!/bin/sh
# tools/arm64_test.sh - cross-builds dc for aarch64 and runs its C tests under
# qemu-user, so the NEON kernels (nn/kernels_neon.c) and everything else that
# differs on ARM are tested on an x86 machine.
#
#   tools/arm64_test.sh [--setup] [--full]
#
# The build is the default configuration (PORTABLE unset: NEON kernels on),
# made by the top-level Makefile with CC=aarch64-linux-gnu-gcc into
# build/arm64/ (B= overrides the build folder, so no other variant's objects
# are touched). It links Debian's arm64 OpenBLAS (OpenMP build), installed
# side by side through multiarch; qemu-aarch64 finds the arm64 loader and
# libraries under / (multiarch paths), so no sysroot is needed.
#
# Default: only the tests that need no Python-made files (kernels with their
# NEON vs scalar twins, f16, layers, npy, cpu, classifier core, images), each
# picked by a FILTER substring of its name; tests/data is read as it is.
# The int8 product's tests (int8_) run on qemu's `-cpu max`, which has sdot
# (the neondot variant must be detected and chosen); the choice and the
# plain NEON kernel run again on `-cpu cortex-a72` (a Raspberry Pi 4), which
# has not: there the detection must pick the NEON variant, or the run dies of
# SIGILL. Every other run uses -cpu max.
# --full: also runs tools/refs/prepare_tests.py on the host (the model files are
# the same bytes on any architecture: little-endian .dcw) and then runs the
# whole suite, the driver tests included (through a qemu wrapper script).
# --setup: first installs what is missing (as root): gcc-aarch64-linux-gnu,
# qemu-user and, after `dpkg --add-architecture arm64`,
# libopenblas-openmp-dev:arm64.
#
# Exit status: 0 when every run test passed. Prints the runner's lines and
# the elapsed time.
set -eu

cd "$(dirname "$0")/.."
SETUP=0
FULL=0
for a in "$@"; do
    case "$a" in
    --setup) SETUP=1 ;;
    --full) FULL=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "arm64_test: unknown option $a (see --help)" >&2; exit 2 ;;
    esac
done

CROSS=aarch64-linux-gnu-gcc
BLAS_INC=/usr/include/aarch64-linux-gnu/openblas-openmp
BLAS_DIR=/usr/lib/aarch64-linux-gnu/openblas-openmp
B=build/arm64
PYTHON=${PYTHON:-/usr/bin/python3}
start=$(date +%s)

missing() {
    command -v $CROSS >/dev/null 2>&1 || echo gcc-aarch64-linux-gnu
    command -v qemu-aarch64 >/dev/null 2>&1 || echo qemu-user
    [ -f $BLAS_INC/cblas.h ] && [ -e $BLAS_DIR/libopenblas.so ] || echo libopenblas-openmp-dev:arm64
}

if [ -n "$(missing)" ]; then
    if [ $SETUP = 0 ]; then
        echo "arm64_test: missing: $(missing | tr '\n' ' ')" >&2
        echo "arm64_test: run it once with --setup as root (dpkg --add-architecture arm64 + apt-get)" >&2
        exit 2
    fi
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
    fi
    $SUDO apt-get update -q
    # shellcheck disable=SC2046 # one package a word
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $(missing)
fi

echo "== cross-building for aarch64 (NEON kernels) into $B"
# BLAS_INC/BLAS_DIR follow from the compiler's multiarch name; given here too
# so the build does not depend on that detection
make -s CC=$CROSS B=$B BLAS_INC=$BLAS_INC BLAS_DIR=$BLAS_DIR "PYTHON=$PYTHON" \
    $B/run_tests $B/dc
# the driver tests start $B/dc: run it through qemu
# shellcheck disable=SC2016 # written as it is, expanded when the wrapper runs
printf '#!/bin/sh\nexec qemu-aarch64 "$(dirname "$0")/dc" "$@"\n' > $B/dc-qemu
chmod +x $B/dc-qemu
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# the tests print how they ran (native, simde or qemu)
export DC_TEST_EMULATOR=qemu
CPU=max

failed=0
run() { # run FILTER-or-empty TMP FIXTURES
    out=$(qemu-aarch64 -cpu $CPU $B/run_tests --data tests/data --tmp "$2" --dc $B/dc-qemu --fixtures "$3" ${1:+"$1"} 2>&1) || failed=1
    printf '%s\n' "$out" | grep -v '^dc .* tests, kernels' || true
    case "$out" in *"kernels: neon"*) ;; *) echo "arm64_test: the runner did not pick the NEON kernels"; failed=1 ;; esac
}

if [ $FULL = 1 ]; then
    echo "== preparing the model files on the host ($PYTHON tools/refs/prepare_tests.py $B/tmp)"
    mkdir -p $B/tmp
    $PYTHON tools/refs/prepare_tests.py $B/tmp tests/fixtures
    echo "== the whole suite under qemu-aarch64"
    run "" $B/tmp tests/fixtures
else
    # the tests that read only tests/data and write only into TMP
    mkdir -p $B/tmp-nopython
    for f in _kernels_should kernel_choice f16_should \
             should_match_numpy attention_should_hold \
             npy_should blas_check cpu_level \
             timestep_grid evaluation_counts planted_best zero_error sequential_stop same_seed calibrated_ calibration_should_be_checked \
             bad_options noise_should student_t \
             decoded_pixels resize_should preprocessing_should bad_image_files every_dht files_that_break; do
        echo "== FILTER $f"
        run "$f" $B/tmp-nopython /nonexistent
    done
    echo "== FILTER int8_ (-cpu max: sdot)"
    export DC_TEST_EXPECT_DOT=1
    run int8_ $B/tmp-nopython /nonexistent
    # on the Pi 4's core: detection must avoid sdot and pick the plain NEON kernel
    echo "== FILTER int8_self_check, int8_neon_ (-cpu cortex-a72: no sdot)"
    CPU=cortex-a72
    export DC_TEST_EXPECT_DOT=0
    run int8_self_check $B/tmp-nopython /nonexistent
    run int8_neon_ $B/tmp-nopython /nonexistent
    CPU=max
    unset DC_TEST_EXPECT_DOT
fi

echo "== arm64 tests: $([ $failed = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
exit $failed
