#!/usr/bin/env python3
"""tests/test_install.py - `make install` as a user meets it: install into a
temporary prefix, then build, link and run a C program with nothing but
`pkg-config --cflags --libs dc`, run the installed driver from elsewhere
(it must find its default model and presets under share/dc) and the
Python module installed by Debian's pip, offline, check that
libdc.so exports exactly the functions dc.h declares, that the man page
names every option the driver's --help texts name, and that `make
uninstall` (also with DESTDIR) leaves no file behind.

Plain functions named like sentences; prints "ok   name" or "FAIL name:
reason" per test and ends with "N passed, M failed".

usage: test_install.py [--make MAKE]   (from the repository root)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE = "make"
TMP = tempfile.mkdtemp(prefix="dc_install_")
PREFIX = os.path.join(TMP, "prefix")  # a path with no relation to the repository
SAMPLE = os.path.join(ROOT, "data", "samples", "shirt_0004.png")
TESTS = []

PROGRAM = r"""
/* links against the installed dc: version check, the default model, one image */
#include <dc.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    if (strcmp(dc_version(), DC_VERSION_STRING)) {
        fprintf(stderr, "header %s, library %s\n", DC_VERSION_STRING, dc_version());
        return 1;
    }
    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    dc_result r;
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    o.n_stages = 1, o.samples[0] = 4, o.keep[0] = 1, o.batch = 16;
    int rc = 1;
    if (dc_model_load(&m, argv[1], NULL, &err) != DC_OK || dc_ctx_new(&c, m, &err) != DC_OK ||
        dc_classes_new(&cl, c, NULL, 0, NULL, &err) != DC_OK ||
        dc_classify_image(c, cl, argv[2], &o, &r, &err) != DC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    printf("%s %s %ld\n", dc_version(), dc_classes_name(cl, r.ranking[0]), r.n_evals);
    dc_result_free(&r);
    rc = 0;
done:
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}
"""


def test(fn):
    TESTS.append(fn)
    return fn


def run(cmd, env=None, cwd=None, check=True):
    p = subprocess.run(cmd, cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                       shell=isinstance(cmd, str))
    if check:
        assert p.returncode == 0, f"{cmd} -> exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def make(*args):
    return run([MAKE, "-s", "--no-print-directory", *args, "LDCONFIG=:"])


def files_under(root):
    """Every file and link below root (not directories), relative."""
    out = []
    for d, dirs, files in os.walk(root):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.append(os.path.relpath(os.path.join(d, name), root))
    return sorted(out)


def pc_env():
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = os.path.join(PREFIX, "lib", "pkgconfig")
    return env


def version_from_header():
    m = re.search(r'#define DC_VERSION_STRING "([^"]+)"', open(os.path.join(ROOT, "dc.h")).read())
    return m.group(1)


def functions_declared_in_header():
    """dc_ functions dc.h declares: a declaration starts at the beginning of a
    line (the usage example in its top comment is indented)."""
    src = open(os.path.join(ROOT, "dc.h")).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)  # comments out
    return set(re.findall(r"^[a-z][\w \*]*?\b(dc_\w+)\s*\(", src, flags=re.M))


@test
def install_should_put_every_part_under_the_prefix():
    make("install", f"PREFIX={PREFIX}")
    v = version_from_header()
    major = v.split(".")[0]
    want = ["bin/dc", "include/dc.h", "lib/libdc.a", f"lib/libdc.so.{v}", f"lib/libdc.so.{major}", "lib/libdc.so",
            "lib/pkgconfig/dc.pc", "share/dc/models/default.dcw", "share/dc/models/fmnist-sd.dcw",
            "share/dc/models/fmnist-dit.dcw", "share/dc/presets/cifar10.txt",
            "share/dc/classes/fashion_mnist.txt", "share/man/man1/dc.1"]
    have = files_under(PREFIX)
    missing = [f for f in want if f not in have]
    assert not missing, f"not installed: {missing}; installed: {have}"
    assert os.readlink(os.path.join(PREFIX, f"lib/libdc.so.{major}")) == f"libdc.so.{v}"
    assert os.path.realpath(os.path.join(PREFIX, "share/dc/models/default.dcw")) == \
        os.path.realpath(os.path.join(PREFIX, "share/dc/models/fmnist-sd.dcw"))
    man = open(os.path.join(PREFIX, "share/man/man1/dc.1")).read()
    assert "@DATADIR@" not in man and f"{PREFIX}/share/dc/models/default.dcw" in man, "man page paths not filled in"


@test
def shared_library_should_export_exactly_the_functions_of_dc_h():
    v = version_from_header()
    lib = os.path.join(PREFIX, "lib", f"libdc.so.{v}")
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run(["readelf", "-d", lib]).stdout)
    assert soname and soname.group(1) == f"libdc.so.{v.split('.')[0]}", f"soname {soname and soname.group(1)}"
    exported = set()
    for ln in run(["nm", "-D", "--defined-only", lib]).stdout.splitlines():
        parts = ln.split()
        if len(parts) == 3:
            exported.add(parts[2].split("@")[0])
    declared = functions_declared_in_header()
    print(f"  dc.h declares {len(declared)} functions; libdc.so exports {len(exported)} symbols")
    assert len(declared) >= 25, f"only {len(declared)} functions found in dc.h: is the parse broken?"
    internal = sorted(s for s in exported if not s.startswith("dc_") or s.startswith("dc__"))
    assert not internal, f"internal or foreign symbols exported: {internal[:20]}"
    assert exported == declared, f"exported but not in dc.h: {sorted(exported - declared)}; " \
                                 f"in dc.h but not exported: {sorted(declared - exported)}"


@test
def pkg_config_alone_should_build_a_program_that_classifies():
    env = pc_env()
    flags = run("pkg-config --cflags --libs dc", env=env).stdout.split()
    src = os.path.join(TMP, "prog.c")
    open(src, "w").write(PROGRAM)
    exe = os.path.join(TMP, "prog")
    run(["cc", "-std=c99", "-Wall", "-Werror", src, "-o", exe, *flags], cwd=TMP)
    env["LD_LIBRARY_PATH"] = os.path.join(PREFIX, "lib")
    ldd = run(["ldd", exe], env=env).stdout
    assert os.path.join(PREFIX, "lib", "libdc.so.") in ldd, f"not linked to the installed libdc.so:\n{ldd}"
    model = run("pkg-config --variable=datadir dc", env=env).stdout.strip() + "/models/default.dcw"
    out = run([exe, model, SAMPLE], env=env, cwd=TMP).stdout.split()
    print(f"  program: {' '.join(out)}")
    assert out[0] == version_from_header(), out
    drv = run([os.path.join(PREFIX, "bin", "dc"), "classify", "--samples", "4", "--keep", "1", "--batch", "16",
               "--json", "--quiet", SAMPLE], cwd=TMP, env=dict(os.environ, DC_NO_REEXEC="1")).stdout
    d = json.loads(drv)
    assert [out[1], int(out[2])] == [d["prediction"], d["evals"]], f"program {out} vs driver {drv}"


@test
def pkg_config_static_flags_should_link_libdc_a_on_its_own():
    env = pc_env()
    libs = run("pkg-config --static --libs dc", env=env).stdout.split()
    assert "-ldc" in libs, libs
    libs = [x for y in libs for x in (["-Wl,-Bstatic", "-ldc", "-Wl,-Bdynamic"] if y == "-ldc" else [y])]
    exe = os.path.join(TMP, "prog_static")
    run(["cc", "-std=c99", os.path.join(TMP, "prog.c"), "-o", exe,
         *run("pkg-config --cflags dc", env=env).stdout.split(), *libs], cwd=TMP)
    assert "libdc.so" not in run(["ldd", exe]).stdout, "linked to libdc.so, not libdc.a"
    out = run([exe, os.path.join(PREFIX, "share/dc/models/default.dcw"), SAMPLE], cwd=TMP).stdout
    assert out.startswith(version_from_header() + " "), out


@test
def installed_driver_should_find_its_model_and_presets_from_anywhere():
    env = {k: v for k, v in os.environ.items() if k != "DC_DATA"}
    dc = os.path.join(PREFIX, "bin", "dc")
    out = run([dc, "classify", "--samples", "4", "--keep", "1", "--json", "--quiet", SAMPLE], cwd=TMP, env=env).stdout
    assert json.loads(out)["prediction"], out
    out = run([dc, "classify", "--preset", "fashion_mnist", "--samples", "4", "--keep", "1", "--json", "--quiet",
               SAMPLE], cwd="/", env=env).stdout
    assert json.loads(out)["prediction"], out
    # moved elsewhere, it finds share/dc beside its bin/
    moved = os.path.join(TMP, "moved")
    os.rename(PREFIX, moved)
    try:
        out = run([os.path.join(moved, "bin", "dc"), "classify", "--samples", "4", "--keep", "1", "--json", "--quiet",
                   SAMPLE], cwd=TMP, env=env).stdout
        assert json.loads(out)["prediction"], out
    finally:
        os.rename(moved, PREFIX)


def help_texts(dc):
    texts = {"": run([dc, "--help"]).stdout}
    for cmd in ["classify", "eval", "calibrate", "match", "forward", "tokenize", "info"]:
        texts[cmd] = run([dc, cmd, "--help"]).stdout
    return texts


def deroff(src):
    src = re.sub(r"^\.\\\".*$", "", src, flags=re.M)  # comments
    src = src.replace("\\-", "-").replace("\\&", "").replace("\\(dq", '"')
    return re.sub(r"\\f[BIRP]", "", src)


@test
def man_page_should_name_every_option_and_command_of_the_help_texts():
    man = deroff(open(os.path.join(PREFIX, "share/man/man1/dc.1")).read())
    texts = help_texts(os.path.join(PREFIX, "bin", "dc"))
    missing = []
    n = 0
    for cmd, txt in texts.items():
        for opt in sorted(set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", txt))):
            n += 1
            if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", man):
                missing.append(f"{cmd or 'dc'} {opt}")
    commands = re.findall(r"^  (\w+)", texts[""].split("commands:")[1].split("global options")[0], flags=re.M)
    for c in commands:
        if not re.search(r"^\.B[IR]? \"?" + c + r"\b", man, flags=re.M):
            missing.append(f"command {c}")
    print(f"  {n} options and {len(commands)} commands in the help texts")
    assert n >= 40 and len(commands) >= 8, "too few options found: is the parse broken?"
    assert not missing, f"not in dc.1: {missing}"


@test
def man_page_should_render_without_warnings():
    if not shutil.which("groff"):
        print("  groff not installed: rendering not checked")
        return
    p = run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(PREFIX, "share/man/man1/dc.1")])
    assert not p.stderr.strip(), p.stderr


@test
def python_package_should_install_offline_and_find_the_installed_library():
    py = "/usr/bin/python3"
    if run([py, "-m", "pip", "--version"], check=False).returncode:
        print("  Debian's pip (python3-pip) not installed: not checked")
        return
    site = os.path.join(TMP, "site")
    run([py, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--target", site,
         os.path.join(ROOT, "python")], env=dict(os.environ, PIP_NO_INDEX="1"))
    env = {k: v for k, v in os.environ.items() if k not in ("DC_LIBRARY", "DC_DATA")}
    env.update(PYTHONPATH=site, LD_LIBRARY_PATH=os.path.join(PREFIX, "lib"))
    code = ("import dc; m = dc.Model(); r = m.classify(%r, stop='adaptive', samples=[4], keep=[1]); "
            "print(dc.__file__, dc.LIBRARY, m.path, r.prediction, r.evals)" % SAMPLE)
    out = run([py, "-c", code], env=env, cwd=TMP).stdout.split()
    print(f"  module {out[0]}, library {out[1]}, model {out[2]}")
    assert out[0].startswith(site), out
    assert out[1] == os.path.realpath(os.path.join(PREFIX, "lib", f"libdc.so.{version_from_header()}")), out
    assert out[2] == os.path.join(PREFIX, "share", "dc", "models", "default.dcw"), out
    assert out[4] == "40", out


@test
def uninstall_should_leave_no_file_behind():
    make("uninstall", f"PREFIX={PREFIX}")
    left = files_under(PREFIX)
    assert not left, f"left behind: {left}"
    assert not os.path.exists(os.path.join(PREFIX, "share", "dc")), "share/dc left behind"


@test
def destdir_should_stage_an_installation_for_its_final_prefix():
    stage = os.path.join(TMP, "stage")
    make("install", f"DESTDIR={stage}", "PREFIX=/usr/local")
    have = files_under(stage)
    assert have and all(f.startswith("usr/local/") for f in have), have
    pc = open(os.path.join(stage, "usr/local/lib/pkgconfig/dc.pc")).read()
    assert "prefix=/usr/local\n" in pc and stage not in pc, pc
    assert stage not in open(os.path.join(stage, "usr/local/share/man/man1/dc.1")).read()
    make("uninstall", f"DESTDIR={stage}", "PREFIX=/usr/local")
    assert not files_under(stage), files_under(stage)


def main():
    global MAKE
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--make" and args:
            MAKE = args.pop(0)
        else:
            sys.exit(f"test_install.py: unknown argument {a}")
    passed = failed = 0
    for fn in TESTS:
        try:
            fn()
        except Exception as e:  # a failed assert or a command that failed
            failed += 1
            msg = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print(f"FAIL {fn.__name__}: {msg}")
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
        sys.stdout.flush()
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
