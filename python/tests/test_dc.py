"""python/tests/test_dc.py - the Python module against the C library and the
dc driver: on the shipped default model, the same images and options must
give exactly the driver's --json results (ranking, errors as printed,
evaluations, stopping rule), for files and for numpy pixels alike; the
network components exactly the driver's `dc forward` outputs; and the
ctypes declarations the C compiler's layout of dc.h.

Images: a grey and an RGB picture made from Fashion-MNIST test images
(Debian's dataset-fashion-mnist; seeded noise without it), written as PNG
files by a few lines of zlib here, so the driver reads the same pixels the
module gets as arrays; and one of the shipped sample PNGs.
"""
import gzip
import json
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import zlib

import dc  # before numpy, which loads OpenMP: dc makes its threads wait passively
import numpy as np
from dc import _capi

import sys  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "tools", "convert"))
from dcw import read_dcw, write_dcw  # noqa: E402  (numpy only: copies a model without its calibration)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.environ.get("DC_TEST_DRIVER", os.path.join(ROOT, "build", "release", "dc"))
SAMPLE = os.path.join(ROOT, "data", "samples", "coat_0006.png")
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TMP = tempfile.mkdtemp(prefix="dc_python_")


def write_png(path, a):
    """8-bit grey [h, w] or RGB [h, w, 3] as a PNG (filter 0 on every row)."""
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if a.ndim == 2 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_images():
    """(grey [28, 28], rgb [28, 28, 3]) uint8."""
    if os.path.exists(FMNIST):
        with gzip.open(FMNIST) as f:
            px = np.frombuffer(f.read(16 + 3 * 784)[16:], np.uint8).reshape(3, 28, 28)
        grey = px[1]
        rgb = np.stack([px[2], (px[2] * 0.6).astype(np.uint8), 255 - px[2]], axis=-1)
    else:
        rng = np.random.default_rng(5)
        grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        rgb = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    return grey, np.ascontiguousarray(rgb)


def driver(*args, check=True):
    """Runs the driver as the module runs the library: the OpenBLAS kernels
    this process has (no re-execution), the same thread count."""
    env = dict(os.environ, DC_NO_REEXEC="1")
    p = subprocess.run([DRIVER, *args], capture_output=True, text=True, env=env)
    if check and p.returncode:
        raise AssertionError(f"dc {' '.join(args)}: exit {p.returncode}: {p.stderr}")
    return p


def driver_json(*args):
    return [json.loads(line) for line in driver("classify", "--json", "--quiet", "--top", "100", *args)
            .stdout.splitlines()]


def need_driver():
    """The classes that compare with the driver fail at once, saying how to
    build it, when it is not there."""
    if not os.path.exists(DRIVER):
        raise AssertionError(f"no driver at {DRIVER} (make, or run.py --dc PATH)")


class ClassifyLikeTheDriver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_driver()
        cls.model = dc.Model()
        cls.grey, cls.rgb = test_images()
        cls.grey_png, cls.rgb_png = os.path.join(TMP, "grey.png"), os.path.join(TMP, "rgb.png")
        write_png(cls.grey_png, cls.grey)
        write_png(cls.rgb_png, cls.rgb)

    def assert_same(self, want, got, what):
        """The driver's JSON object and a Result: every field the driver prints, errors to its 6 digits."""
        g = got.to_dict(top=100)
        for key in ("prediction", "compute", "stop", "note", "decided", "left", "evals", "timesteps"):
            self.assertEqual(want[key], g[key], f"{what}: {key}")
        self.assertEqual([(t["class"], t["kept"], t["scored"], t["timesteps"]) for t in want["top"]],
                         [(t["class"], t["kept"], t["scored"], t["timesteps"]) for t in g["top"]], f"{what}: ranking")
        self.assertEqual([t["error"] for t in want["top"]], [float("%.6g" % t["error"]) for t in g["top"]],
                         f"{what}: mean errors")
        self.assertEqual([t["vs_best"] for t in want["top"]],
                         [None if t["vs_best"] is None else float("%.6g" % t["vs_best"]) for t in g["top"]],
                         f"{what}: errors against the best")
        self.assertEqual(len(want["top"]), len(got.classes))

    def test_default_options_should_give_the_driver_results_for_paths_and_arrays(self):
        want = driver_json(self.grey_png, self.rgb_png, SAMPLE)
        paths = self.model.classify_batch([self.grey_png, self.rgb_png, SAMPLE])
        arrays = self.model.classify_batch([self.grey, self.rgb])
        print(f"  driver: {[w['prediction'] for w in want]}, {[w['evals'] for w in want]} evals ({want[0]['stop']})")
        for w, p, name in zip(want, paths, ["grey.png", "rgb.png", "sample"]):
            self.assert_same(w, p, f"path {name}")
            self.assertEqual(p.image, w["image"])
        self.assert_same(want[0], arrays[0], "grey array")
        self.assert_same(want[1], arrays[1], "rgb array")
        self.assertEqual(want[0]["stop"], "screened")  # the shipped model's default rule: 10 classes

    def test_options_should_reach_the_library_as_the_driver_passes_them(self):
        want = driver_json("--stop", "sequential", "--seed", "7", "--batch", "8", "--samples", "30,200",
                           "--keep", "4,1", "--loss", "l1", "--class", "coat", "--class", "dress",
                           "--class", "bag", "--template", "a black and white photo of a {}.", self.grey_png)[0]
        got = self.model.classify(self.grey, ["coat", "dress", "bag"], template="a black and white photo of a {}.",
                                  stop="sequential", seed=7, batch=8, samples=[30, 200], keep=[4, 1], loss="l1")
        self.assert_same(want, got, "sequential, seed 7, l1, three classes")
        self.assertEqual(got.classes, ("coat", "dress", "bag"))
        want = driver_json("--stop", "adaptive", "--samples", "6,12", "--keep", "3,1", "--trials", "2", "--seed", "3",
                           self.rgb_png)[0]
        got = self.model.classify(self.rgb, stop="adaptive", samples=(6, 12), keep=(3, 1), trials=2, seed=3)
        self.assert_same(want, got, "adaptive, two trials")
        self.assertEqual(got.stop, "adaptive")

    def test_int8_compute_should_give_the_driver_int8_results(self):
        m = dc.Model(compute="int8")
        self.assertEqual((self.model.compute, m.compute), ("f32", "int8"))
        self.assertTrue(m.int8_variant)
        want = driver_json("--compute", "int8", self.grey_png)[0]
        self.assertEqual(want["compute"], "int8")
        got = m.classify(self.grey)
        self.assert_same(want, got, "int8 compute")
        f32 = self.model.classify(self.grey)
        self.assertFalse(np.array_equal(f32.mean_error, got.mean_error), "int8 compute gave f32's errors")
        auto = dc.Model(compute="auto")
        self.assertEqual(auto.compute, "int8" if dc.blas()["int8_auto"] else "f32")
        with self.assertRaises(ValueError):
            dc.Model(compute="int4")
        m.close()
        auto.close()

    def test_a_batch_array_should_be_classified_image_by_image_in_place(self):
        stack = np.stack([self.grey, self.grey[::-1]])  # [2, 28, 28]
        one = self.model.classify_batch(stack, samples=[8], keep=[1])
        self.assertEqual(len(one), 2)
        alone = self.model.classify(np.ascontiguousarray(self.grey[::-1]), samples=[8], keep=[1])
        self.assertEqual(one[1].ranking, alone.ranking)
        self.assertTrue(np.array_equal(one[1].mean_error, alone.mean_error))
        rgbs = np.stack([self.rgb, self.rgb])  # [2, 28, 28, 3]
        two = self.model.classify_batch(rgbs, samples=[8], keep=[1])
        self.assertTrue(np.array_equal(two[0].mean_error, two[1].mean_error))

    def test_results_should_carry_ranking_errors_evaluations_and_rule(self):
        r = self.model.classify(SAMPLE, stop="adaptive", samples=[10], keep=[1])
        self.assertEqual(r.classes, tuple(self.model.classes))
        self.assertEqual(sorted(r.order.tolist()), list(range(10)))
        self.assertEqual(r.ranking[0], r.prediction)
        self.assertEqual(r.errors.shape, (10, len(r.timesteps)))
        self.assertEqual(r.evals, 10 * 10)
        self.assertTrue(np.allclose(np.nanmean(r.errors, axis=1), r.mean_error, rtol=1e-5))
        self.assertGreater(r.seconds, 0)
        self.assertEqual(r.stop, "adaptive")
        self.assertIn(r.prediction, repr(r))


    def test_the_default_rule_should_be_the_librarys(self):
        """stop "auto": calibrated on the shipped model (screened above
        DC_SCREENED_FROM classes), the t-test with a note on a copy without
        its calibration, calibrated again with a calibration file; the
        driver's JSON says the same."""
        self.assertEqual(dc.Options().rule(self.model, 9), ("calibrated", ""))
        self.assertEqual(dc.Options().rule(self.model, 10), ("screened", ""))
        self.assertEqual(dc.Options(stop="sequential").rule(self.model, 10), ("sequential", ""))
        bare = os.path.join(TMP, "no_calibration.dcw")
        meta, tensors = read_dcw(self.model.path)
        meta = {k: v for k, v in meta.items() if not k.startswith("classify.calib")}
        write_dcw(bare, meta, [(name, arr, dtype) for name, (dtype, arr) in tensors.items()])
        m = dc.Model(bare)
        rule, note = dc.Options().rule(m, 10)
        self.assertEqual(rule, "sequential")
        self.assertIn("dc calibrate", note)
        want = driver_json("-m", bare, self.grey_png)[0]
        got = m.classify(self.grey)
        self.assert_same(want, got, "no calibration")
        self.assertEqual((got.stop, got.note), (rule, note))
        cal = os.path.join(ROOT, "data", "calibration", "fmnist-sd.txt")
        want = driver_json("-m", bare, "--calibration", cal, self.grey_png)[0]
        got = m.classify(self.grey, calibration=cal)
        self.assert_same(want, got, "a calibration file")
        self.assertEqual((got.stop, got.note), ("screened", ""))
        self.assertEqual(got.kept, [got.prediction])

    def test_calibration_files_should_be_read_by_the_library(self):
        folder = os.path.join(ROOT, "tests", "data", "calibration")
        t, s = dc.Options(calibration=os.path.join(folder, "good_dc_calibrate_1500.txt")).calibration
        self.assertEqual((len(t), int(t[-1])), (1500, 1499))
        for name in ("bad_descending.txt", "bad_hex_spread.txt", "bad_long_line.txt"):
            with self.assertRaises(dc.Error) as e:
                dc.Options(calibration=os.path.join(folder, name))
            self.assertEqual(e.exception.status, "format")
            self.assertIn(name, str(e.exception))

    def test_a_budget_should_stop_any_rule_undecided_as_the_driver(self):
        for stop in ("adaptive", "sequential", "calibrated", "screened"):
            want = driver_json("--stop", stop, "--max-evals", "35", self.grey_png)[0]
            got = self.model.classify(self.grey, stop=stop, max_evals=35)
            self.assert_same(want, got, f"{stop}, 35 evaluations")
            self.assertFalse(got.decided)
            self.assertLessEqual(got.evals, 35)
            self.assertGreater(got.left, 1)
        self.assertTrue(self.model.classify(self.grey, max_evals=10 ** 6).decided)
        with self.assertRaises(ValueError):
            self.model.classify(self.grey, max_evals=0)

    def test_unlabelled_calibration_should_follow_from_the_errors(self):
        """dc calibrate's file, against the same statistics computed here with
        numpy from the module's per-timestep errors of the same images."""
        images = [self.grey_png, self.rgb_png] + sorted(
            os.path.join(ROOT, "data", "samples", f) for f in os.listdir(os.path.join(ROOT, "data", "samples")))[:6]
        out, res = os.path.join(TMP, "calib.txt"), os.path.join(TMP, "calib.jsonl")
        driver("calibrate", *images, "--samples", "8", "--keep", "1", "-o", out, "--results", res, "--quiet")
        sums = {}
        for r in self.model.classify_batch(images, samples=[8], keep=[1], stop="adaptive"):
            lead = r.order[0]
            for j, t in enumerate(r.timesteps):
                d = np.array([r.errors[c, j] for c in range(len(r.classes)) if c != lead], np.float64) - \
                    np.float64(r.errors[lead, j])
                s = sums.setdefault(int(t), [0.0, 0.0, 0])
                s[0] += d.sum()
                s[1] += (d * d).sum()
                s[2] += len(d)
        ts = sorted(sums)
        mean = [sums[t][0] / sums[t][2] for t in ts]
        log_sd = [np.log(np.sqrt((sums[t][1] - sums[t][2] * m * m) / (sums[t][2] - 1))) for t, m in zip(ts, mean)]
        smooth = [np.exp(np.mean(log_sd[max(0, i - 2):i + 3])) for i in range(len(ts))]
        lines = [line.split() for line in open(out) if not line.startswith("#")]
        self.assertIn("on 8 unlabelled images", open(out).read())
        self.assertEqual([int(x[0]) for x in lines], ts)
        self.assertEqual([int(x[3]) for x in lines], [sums[t][2] for t in ts])
        np.testing.assert_allclose([float(x[1]) for x in lines], smooth, rtol=2e-5)
        np.testing.assert_allclose([float(x[2]) for x in lines], mean, rtol=2e-5, atol=1e-9)


class Forward(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_driver()
        cls.model = dc.Model()
        cls.path = cls.model.path

    def driver_forward(self, component, *arrays, extra=()):
        names = []
        for i, a in enumerate(arrays):
            names.append(os.path.join(TMP, f"{component}_in{i}.npy"))
            np.save(names[-1], a)
        out = os.path.join(TMP, f"{component}_out.npy")
        driver("forward", "-m", self.path, component, *names, "-o", out, *extra)
        return np.load(out)

    def test_components_should_give_the_driver_outputs_exactly(self):
        rng = np.random.default_rng(1)
        image = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
        latent = self.model.forward("vae", image)
        self.assertTrue(np.array_equal(latent, self.driver_forward("vae", image)), "vae")
        ids = np.stack([self.model.tokenize("a photo of a coat."), self.model.tokenize("a photo of a bag.")])
        self.assertEqual(ids.dtype, np.int64)
        context = self.model.forward("text", ids)
        self.assertTrue(np.array_equal(context, self.driver_forward("text", ids)), "text")
        t = np.array([10.0, 700.0], np.float32)
        pred = self.model.forward("unet", latent, t, context)
        self.assertEqual(pred.shape, latent.shape)
        self.assertTrue(np.array_equal(pred, self.driver_forward("unet", latent, t, context)), "unet")
        mean, std = self.model.forward("vae-std", image)
        self.assertTrue(np.array_equal(mean, latent))
        self.assertTrue((std > 0).all())

    def test_token_ids_should_be_the_driver_tokens(self):
        out = driver("tokenize", "-m", self.path, "a photo of a sneaker.").stdout.split()
        self.assertEqual(self.model.tokenize("a photo of a sneaker.").tolist(), [int(x) for x in out])


class NoCopies(unittest.TestCase):
    def test_inputs_in_the_right_layout_should_be_passed_in_place(self):
        rgb = np.zeros((5, 7, 3), np.uint8)
        self.assertTrue(np.shares_memory(dc._pixels(rgb), rgb))
        x = np.zeros((1, 4, 8, 8), np.float32)
        self.assertIs(dc._tensor(x, "x")[1], x)
        ids = np.zeros((1, 16), np.int64)
        self.assertIs(dc._tensor(ids, "ids")[1], ids)
        # what must change is converted: grey to RGB, float64 to float32, a strided view to contiguous
        grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
        self.assertTrue(np.array_equal(dc._pixels(grey), np.repeat(grey[:, :, None], 3, axis=2)))
        self.assertEqual(dc._tensor(x.astype(np.float64), "x")[1].dtype, np.float32)
        self.assertTrue(dc._pixels(np.zeros((5, 14, 3), np.uint8)[:, ::2]).flags.c_contiguous)

    def test_outputs_should_use_the_library_buffer_until_the_last_view_is_gone(self):
        m = dc.Model()
        x = np.zeros((1, 3, 32, 32), np.float32)
        out = m.forward("vae", x)
        self.assertIsInstance(out.base, dc._Owned)
        view = out[0, :2]
        want = view.copy()
        del out
        np.sum(np.ones((256, 1024), np.float32))  # allocations that would reuse freed memory
        self.assertTrue(np.array_equal(view, want))


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = dc.Model()

    def test_library_errors_should_raise_dc_error_with_its_message(self):
        with self.assertRaises(dc.Error) as e:
            dc.Model(os.path.join(TMP, "missing.dcw"))
        self.assertEqual(e.exception.status, "io")
        self.assertIn("missing.dcw", str(e.exception))
        bad = os.path.join(TMP, "bad.dcw")
        open(bad, "wb").write(b"not a model at all" * 10)
        with self.assertRaises(dc.Error) as e:
            dc.Model(bad)
        self.assertEqual(e.exception.status, "format")
        with self.assertRaises(dc.Error) as e:
            self.model.classify(os.path.join(TMP, "nothing.png"))
        self.assertIn("nothing.png", str(e.exception))
        with self.assertRaises(dc.Error) as e:
            self.model.forward("nonsense", np.zeros(3, np.float32))
        self.assertEqual(e.exception.status, "invalid")
        self.assertIn("nonsense", str(e.exception))
        with self.assertRaises(dc.Error) as e:
            self.model.forward("vae", np.zeros((1, 5, 32, 32), np.float32))
        self.assertRegex(str(e.exception), "channel|shape|3")
        with self.assertRaises(dc.Error) as e:
            self.model.classify_batch([SAMPLE, os.path.join(TMP, "nothing.png")], samples=[4], keep=[1])
        self.assertIn("image 1", str(e.exception))

    def test_bad_options_and_pixels_should_be_refused_before_the_library(self):
        px = np.zeros((28, 28), np.uint8)
        for kw in ({"stop": "fast"}, {"loss": "l3"}, {"samples": [0]}, {"samples": [5, 10], "keep": [1]},
                   {"seed": -1}, {"batch": 0}, {"alpha": 1.5}, {"threads": 0}, {"trials": 2.5}):
            with self.assertRaises(ValueError, msg=str(kw)):
                self.model.classify(px, **kw)
        with self.assertRaises(TypeError):
            self.model.classify(px, budget=10)
        with self.assertRaises(TypeError):
            self.model.classify(px.astype(np.float32))
        with self.assertRaises(ValueError):
            self.model.classify(np.zeros((28, 28, 2), np.uint8))
        with self.assertRaises(TypeError):
            self.model.classify(px, classes="coat")


class Threads(unittest.TestCase):
    def test_classification_should_run_without_the_gil(self):
        m = dc.Model()
        m.classify(SAMPLE, samples=[4], keep=[1])  # contexts and classes made, so the timed call is all C
        done = threading.Event()
        span = []

        def work():
            t0 = time.perf_counter()
            m.classify(SAMPLE, stop="adaptive", samples=[40], keep=[1], batch=40)
            span.append(time.perf_counter() - t0)
            done.set()

        worker = threading.Thread(target=work)
        last, gap, ticks = time.perf_counter(), 0.0, 0
        worker.start()
        while not done.is_set():  # Python code needs the GIL after each nap to go on
            time.sleep(0.002)
            now = time.perf_counter()
            gap, last, ticks = max(gap, now - last), now, ticks + 1
        gap = max(gap, time.perf_counter() - last)
        worker.join()
        print(f"  classification {span[0]:.2f} s; meanwhile this thread ran {ticks} loops, longest pause {gap:.3f} s")
        self.assertGreater(span[0], 0.3, "too short a call to tell")
        self.assertLess(gap, span[0] / 3, "the calling thread held the GIL through the call")

    def test_threads_option_should_apply_to_the_call_only(self):
        m = dc.Model()
        before = dc.blas()["threads"]
        m.classify(SAMPLE, samples=[4], keep=[1], threads=1)
        self.assertEqual(dc.blas()["threads"], before)

    def test_threads_should_classify_with_one_model_at_once(self):
        m = dc.Model()
        want = m.classify(SAMPLE, samples=[8], keep=[1]).mean_error
        got = [None, None]

        def work(i):
            got[i] = m.classify(SAMPLE, samples=[8], keep=[1], threads=1).mean_error

        ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertTrue(np.array_equal(got[0], got[1]))
        self.assertTrue(np.allclose(got[0], want, rtol=1e-4))
        self.assertEqual(len(m._ctxs), 3)  # one context per thread


class Declarations(unittest.TestCase):
    def test_struct_layouts_should_be_the_c_compiler_layouts(self):
        if subprocess.run(["sh", "-c", "command -v cc"], capture_output=True).returncode:
            self.skipTest("no C compiler")
        lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "dc.h"', "int main(void) {"]
        for name, s in _capi.STRUCTS.items():
            lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
            for f, _ in s._fields_:
                lines.append(f'printf("{name}.{f} %zu\\n", offsetof({name}, {f}));')
        lines.append("return 0; }")
        src, exe = os.path.join(TMP, "layout.c"), os.path.join(TMP, "layout")
        open(src, "w").write("\n".join(lines) + "\n")
        subprocess.run(["cc", "-std=c99", "-I", ROOT, src, "-o", exe], check=True)
        want = dict(line.rsplit(" ", 1) for line in subprocess.run([exe], capture_output=True, text=True,
                                                                    check=True).stdout.splitlines())
        got = {}
        for name, s in _capi.STRUCTS.items():
            got[name] = str(__import__("ctypes").sizeof(s))
            for f, _ in s._fields_:
                got[f"{name}.{f}"] = str(getattr(s, f).offset)
        self.assertEqual(want, got)

    def test_bound_functions_should_be_declared_in_dc_h(self):
        src = re.sub(r"/\*.*?\*/", "", open(os.path.join(ROOT, "dc.h")).read(), flags=re.S)
        declared = set(re.findall(r"^[a-z][\w \*]*?\b(dc_\w+)\s*\(", src, flags=re.M))
        self.assertFalse(set(_capi.SIGNATURES) - declared)
        self.assertNotIn("dc_classify_latent", _capi.SIGNATURES)


if __name__ == "__main__":
    unittest.main()
