#!/bin/sh
# tests/lone_clone.sh - the repository stands on its own. Checks that no
# tracked file names a path outside the clone (../shared, the build
# machine's /work), then clones the committed HEAD into an empty temporary
# folder (nothing beside it) and runs one suite there: it must pass with
# no test skipped but those that name a CPU or build feature this machine
# lacks. Prints "N passed, M failed" last, as the C runner does.
#
# usage: sh tests/lone_clone.sh [MAKE_TARGET]   (default test-one: the release suite)
set -u
: "${MAKE:=make}" "${PYTHON:=python3}"
target=${1:-test-one}
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; printf '  %s\n' "$@"; fail=$((fail + 1)); }

root=$(git rev-parse --show-toplevel) || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dc-lone.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# 1. what the clone holds names nothing outside it (the fixtures' own
#    README and case.json files record where they were made: not read here)
if git -C "$root" grep -nI -e '\.\./shared' -e '/work/' -- ':!tests/fixtures' ':!tests/lone_clone.sh' \
        >"$tmp/names"; then
    bad tracked_files_should_name_no_path_outside_the_clone "$(head -n 10 "$tmp/names")"
else
    ok tracked_files_should_name_no_path_outside_the_clone
fi

# 2. a clone alone in its folder runs the suite with nothing skipped but
#    what this CPU or build cannot run
name=lone_clone_should_pass_${target}_with_no_skip_but_a_missing_cpu_feature
mkdir "$tmp/lone"
git clone -q "$root" "$tmp/lone/dc" 2>"$tmp/clone.err"
if [ -d "$tmp/lone/dc" ] && [ "$(ls -A "$tmp/lone")" = dc ]; then
    log=$tmp/suite.log
    (cd "$tmp/lone/dc" && $MAKE -s PYTHON="$PYTHON" >"$tmp/build.log" 2>&1 &&
        $MAKE -s "$target" PYTHON="$PYTHON") >"$log" 2>&1
    rc=$?
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    # the C runner prints each skip's reason as "  skip: REASON"
    other=$(grep -E '^  skip: ' "$log" | grep -vE 'CPU|aarch64|PORTABLE' || true)
    echo "  $target in $tmp/lone/dc (nothing beside it): ${last:-no result line}"
    grep -E '^  skip: ' "$log" | sed 's/^/  /'
    if [ "$rc" -ne 0 ] || [ -z "$last" ]; then
        bad "$name" "exit $rc" "$(tail -n 5 "$tmp/build.log")" "$(grep -E '^FAIL |^  .*:[0-9]+: ' "$log" | head -n 20)" \
            "$(tail -n 5 "$log")"
    elif [ -n "$other" ]; then
        bad "$name" "skips that name no missing CPU or build feature:" "$other"
    else
        ok "$name"
    fi
else
    bad "$name" "no lone clone: $(cat "$tmp/clone.err"); $tmp/lone holds: $(ls -A "$tmp/lone" | tr '\n' ' ')"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
