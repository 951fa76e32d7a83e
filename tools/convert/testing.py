"""tools/convert/testing.py - the runner of the Python test suites
(tools/convert/test_tools.py, tests/test_sd_single.py): plain asserts, no
pytest. @test registers a function named like a sentence; run(tmp) calls
each in order and prints "ok   name", "FAIL name: reason" or "skip name:
why", then "N passed, M failed, K skipped" (the line tests/run.sh counts),
removes the scratch folder tmp and exits with status 1 if any failed.
"""
import shutil
import sys
import traceback

TESTS = []


class Skip(Exception):
    """Raised by a test that cannot run here (a fixture or a package is missing)."""


def test(fn):
    TESTS.append(fn)
    return fn


def run(tmp):
    passed = failed = skipped = 0
    for fn in TESTS:
        try:
            fn()
        except Skip as e:
            skipped += 1
            print(f"skip {fn.__name__}: {e}")
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a failure, or a converter's refusal: the rest still run
            failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e} (line {where.lineno})")
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)
