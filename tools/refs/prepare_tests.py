#!/usr/bin/env python3
"""tools/refs/prepare_tests.py - writes the model files the C tests read, into
a scratch folder, through the real converter (so the tests exercise the
paths users take):

  test.dcw (+ expected .npy)       tools/refs/make_test_dcw.py
  dit_{pt,st}_f32.dcw, dit_pt_{f16,q8}.dcw
                                   the golden DiT fixture (.pt and safetensors)
  dit_<case>.dcw                   tests/data/dit/<case> (tools/refs/make_dit_refs.py)
  ...                              whatever each tools/refs/prepare_<component>.py writes

usage: prepare_tests.py TMPDIR [FIXTURES]   (FIXTURES: tests/fixtures, part of the repository)
"""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONVERT = os.path.join(ROOT, "tools", "convert", "convert.py")
# the converter's modules, for the prepare_*.py scripts that import this one
sys.path.insert(0, os.path.dirname(CONVERT))
import convert  # noqa: E402


def convert_in_process(family, src, out, *options):
    """convert.py SRC --family FAMILY -o OUT [OPTIONS] in this process: a
    refusal raises SystemExit with the converter's message."""
    convert.main([src, "--family", family, "-o", out, *options])


def convert_fixture_and_cases(family, fixture, tmp):
    """TMP/<family>_fixture_<dtype>.dcw from the golden fixture folder at each
    dtype, and TMP/<family>_<case>.dcw (f32) from each tests/data/<family>/<case>."""
    if os.path.isdir(fixture):
        for dt in ("f32", "f16", "q8"):
            convert_in_process(family, fixture, os.path.join(tmp, f"{family}_fixture_{dt}.dcw"), "--dtype", dt)
    for case in sorted(glob.glob(os.path.join(ROOT, "tests", "data", family, "*"))):
        convert_in_process(family, case, os.path.join(tmp, f"{family}_{os.path.basename(case)}.dcw"))


def folders(usage):
    """(TMPDIR, FIXTURES) from a prepare_*.py command line (TMPDIR made if
    missing; FIXTURES by default tests/fixtures, which must be there); usage
    when there is none."""
    if len(sys.argv) < 2:
        sys.exit(usage)
    tmp = sys.argv[1]
    fixtures = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures")
    if not os.path.isfile(os.path.join(fixtures, "README.md")):
        sys.exit(f"{os.path.basename(sys.argv[0])}: {fixtures}: the golden fixtures are missing "
                 "(they are part of the repository, tests/fixtures)")
    os.makedirs(tmp, exist_ok=True)
    return tmp, fixtures


def run(*args):
    """Runs a Python script (CONVERT, another prepare_*.py); its output only if it fails."""
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def main():
    tmp, fixtures = folders(__doc__)
    run(os.path.join(HERE, "make_test_dcw.py"), os.path.join(tmp, "test.dcw"))
    dit = os.path.join(fixtures, "dit")
    if os.path.isdir(dit):
        for src, tag, dtypes in ((os.path.join(dit, "DiT-tiny-8.pt"), "pt", ("f32", "f16", "q8")),
                                 (os.path.join(dit, "model.safetensors"), "st", ("f32",))):
            for dt in dtypes:
                run(CONVERT, src, "--family", "dit", "--dtype", dt, "-o", os.path.join(tmp, f"dit_{tag}_{dt}.dcw"))
        # DiT + a small VAE: the whole image -> class pipeline (random weights)
        run(CONVERT, os.path.join(dit, "model.safetensors"), "--family", "dit", "--vae",
            os.path.join(ROOT, "tests", "data", "vae", "new_names"), "-o", os.path.join(tmp, "dit_vae.dcw"))
    for case in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "dit", "*"))):
        run(CONVERT, case, "--family", "dit", "-o", os.path.join(tmp, f"dit_{os.path.basename(case)}.dcw"))
    # each component's own preparation: tools/refs/prepare_<component>.py TMPDIR FIXTURES
    for script in sorted(glob.glob(os.path.join(HERE, "prepare_*.py"))):
        if os.path.basename(script) not in ("prepare_tests.py", "prepare_sd_pipeline.py"):
            run(script, tmp, fixtures)
    # last: it assembles parts the others made
    run(os.path.join(HERE, "prepare_sd_pipeline.py"), tmp, fixtures)


if __name__ == "__main__":
    main()
