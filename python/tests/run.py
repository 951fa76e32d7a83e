#!/usr/bin/env python3
"""python/tests/run.py - runs the Python module's tests (plain unittest) and
ends with the summary line the other suites print: "N passed, M failed, K
skipped". Uses the module from this tree (python/dc) and the library
$DC_LIBRARY, else the tree's build/release/libdc.so.

usage: run.py [--dc DRIVER] [NAME_FILTER]
  --dc   the dc driver whose --json output the results must equal
         (default: the tree's build/release/dc)
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))
import dc  # noqa: E402  (first: before numpy loads OpenMP, so that dc can make its threads wait passively)


class Result(unittest.TextTestResult):
    """One line per test, as the C runner prints them."""

    def startTest(self, test):
        unittest.TestResult.startTest(self, test)

    def addSuccess(self, test):
        unittest.TestResult.addSuccess(self, test)
        print(f"ok   {test._testMethodName}", flush=True)

    def addFailure(self, test, err):
        unittest.TestResult.addFailure(self, test, err)
        print(f"FAIL {test._testMethodName}\n{self._exc_info_to_string(err, test)}", flush=True)

    def addError(self, test, err):
        unittest.TestResult.addError(self, test, err)
        print(f"FAIL {test._testMethodName}\n{self._exc_info_to_string(err, test)}", flush=True)

    def addSkip(self, test, reason):
        unittest.TestResult.addSkip(self, test, reason)
        print(f"skip {test._testMethodName}: {reason}", flush=True)


def main():
    args = sys.argv[1:]
    pattern = None
    while args:
        a = args.pop(0)
        if a == "--dc" and args:
            os.environ["DC_TEST_DRIVER"] = os.path.abspath(args.pop(0))
        elif not a.startswith("-"):
            pattern = a
        else:
            sys.exit(f"run.py: unknown argument {a}")
    os.environ.setdefault("DC_TEST_DRIVER", os.path.join(ROOT, "build", "release", "dc"))
    suite = unittest.defaultTestLoader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    if pattern:
        def keep(s):
            out = unittest.TestSuite()
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    out.addTest(keep(t))
                elif pattern in t.id():
                    out.addTest(t)
            return out
        suite = keep(suite)
    print(f"dc {dc.version()} from {dc.LIBRARY}, driver {os.environ['DC_TEST_DRIVER']}", flush=True)
    runner = unittest.TextTestRunner(stream=open(os.devnull, "w"), resultclass=Result, verbosity=0)
    r = runner.run(suite)
    failed = len(r.failures) + len(r.errors)
    skipped = len(r.skipped)
    print(f"{r.testsRun - failed - skipped} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
