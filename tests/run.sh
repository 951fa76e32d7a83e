#!/bin/sh
# tests/run.sh - `make test`: every suite, each in its own build, then one
# summary line. Suites: the Python tools; the normal build; the driver and
# tests built from the single-file library; a program that embeds the single
# file beside its own stb_image (tests/embed.sh); the scalar-only PORTABLE build;
# the ASan+UBSan build; a warning-free check with clang; `make install` into
# a temporary prefix; the Python module against the driver; and `dc eval` over
# two MPI ranks (the `make MPI=1` build), where Open MPI is installed.
# A suite that fails to build counts as one failure.
: "${MAKE:=make}" "${PYTHON:=python3}" "${CC:=cc}"
log=build/test-logs
mkdir -p "$log"
total_pass=0 total_fail=0 total_skip=0

suite() { # name, then the command
    name=$1
    shift
    printf '== %s: %s\n' "$name" "$*"
    "$@" >"$log/$name.log" 2>&1
    rc=$?
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log/$name.log" | tail -n 1)
    grep -E '^(FAIL|skip) |^  .*:[0-9]+: ' "$log/$name.log" | head -n 40
    if [ -z "$last" ]; then
        tail -n 30 "$log/$name.log"
        echo "   $name: no result line (exit $rc): counted as 1 failure; log in $log/$name.log"
        total_fail=$((total_fail + 1))
        return
    fi
    p=$(echo "$last" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$last" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$last" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "   $name: $last"
    total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
}

clang_check() { # warning-free under clang, -Werror (when clang and its OpenMP are here)
    if ! command -v clang >/dev/null 2>&1; then
        echo "clang not installed"; echo "0 passed, 0 failed, 1 skipped"; return 0
    fi
    if $MAKE -s CC=clang CFLAGS="-O2 -Werror" build/release-clang/dc build/release-clang/run_tests; then
        echo "1 passed, 0 failed"
    else
        echo "0 passed, 1 failed"
    fi
}

mpi_check() { # make MPI=1 and mpirun -n 2 against one process (when Open MPI is here)
    if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
        echo "Open MPI not installed (make setup installs it)"; echo "0 passed, 0 failed, 1 skipped"; return 0
    fi
    $MAKE -s test-mpi
}

suite tools $MAKE -s test-tools PYTHON="$PYTHON"
suite release $MAKE -s test-one PYTHON="$PYTHON" CC="$CC"
suite sd_single $PYTHON tests/test_sd_single.py --dc build/release/dc
suite single $MAKE -s test-single PYTHON="$PYTHON" CC="$CC"
suite embed $MAKE -s test-embed PYTHON="$PYTHON" CC="$CC"
suite portable $MAKE -s test-one PORTABLE=1 PYTHON="$PYTHON" CC="$CC"
suite sanitize env ASAN_OPTIONS=detect_leaks=1 $MAKE -s test-one SANITIZE=1 PYTHON="$PYTHON" CC="$CC"
suite clang clang_check
suite install $MAKE -s test-install PYTHON="$PYTHON" CC="$CC"
suite python $MAKE -s test-python PYTHON="$PYTHON" CC="$CC"
suite mpi mpi_check

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
