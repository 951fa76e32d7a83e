"""dc - diffusion models as zero-shot image classifiers, from Python.

A thin layer over the C library (libdc.so, through ctypes) with numpy
arrays in and out:

    import dc
    model = dc.Model()                          # the shipped default model
    r = model.classify("shirt.png")             # a path, or a uint8 HxWx3 / HxW array
    print(r.prediction, r.top(3), r.evals, r.seconds, r.stop)
    rs = model.classify_batch(images, classes=["cat", "dog"], stop="sequential", seed=1)
    out = model.forward("unet", sample, timesteps, context)

Classification options are the driver's (`dc classify --help`): stop,
samples, keep, alpha, min_scores, loss, trials, seed, batch, size,
calibration, max_evals, max_seconds, threads; with the same defaults, the
same images give the same results as `dc classify --json` (a budget that
ran out: r.decided is False). Errors of the library raise dc.Error
with its message. Every call into the library runs without the GIL.

Like the driver, importing dc sets OMP_WAIT_POLICY=passive when it is unset
(see below); OPENBLAS_CORETYPE is left to you: dc.blas() says when setting
it (before Python starts) would give a faster sgemm.
"""
import os
import threading
import warnings


def _openmp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp" in line or "libomp" in line for line in f)
    except OSError:
        return False


# OpenMP threads that spin while they wait lose badly on a busy machine
# (measured here: 89 s instead of 6 s for one classification beside other
# work), and OpenMP reads OMP_WAIT_POLICY once, when it is loaded. So, as
# the dc driver does, it is set to passive when unset, before numpy or
# libdc load OpenMP; when something loaded it earlier, a warning says so.
if "OMP_WAIT_POLICY" not in os.environ:
    if _openmp_loaded():
        warnings.warn("dc: OpenMP was loaded before dc with OMP_WAIT_POLICY unset; its threads spin while they "
                      "wait, which is slow on a busy machine: set OMP_WAIT_POLICY=passive before starting Python, "
                      "or import dc before numpy", RuntimeWarning, stacklevel=2)
    else:
        os.environ["OMP_WAIT_POLICY"] = "passive"

import numpy as np  # noqa: E402

from . import _capi  # noqa: E402
from ._capi import ctypes  # noqa: E402

_lib, LIBRARY = _capi.load()

__all__ = ["Model", "Result", "Error", "Options", "version", "blas", "LIBRARY"]
__version__ = _lib.dc_version().decode()


class Error(Exception):
    """A failure reported by libdc: status is its dc_status name ("io",
    "format", "invalid", ...), the message says what and where."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check(st, err):
    if st != 0:
        raise Error(_capi.STATUS[st] if 0 <= st < len(_capi.STATUS) else str(st), err.msg.decode(errors="replace"))


def version():
    """The linked library's version."""
    return _lib.dc_version().decode()


def blas(rates=False):
    """OpenBLAS's kernel, the CPU's level and advice (dc.h: dc_blas_check).
    When "suggest" is set, export OPENBLAS_CORETYPE to it before Python
    starts for a faster sgemm (the dc driver re-executes itself to do so).
    "int8" names the int8 product's variant here, "int8_check" what its
    check against the scalar twin said, "int8_auto" whether compute="auto"
    means int8. rates=True adds a quick measurement (dc_compute_rates) of
    both products in multiply-adds per second: "f32_macs", "int8_macs"."""
    b = _capi.BlasInfo()
    _lib.dc_blas_check(ctypes.byref(b))
    d = {"core": b.core.decode(), "cpu_level": b.cpu_level.decode(), "suggest": b.suggest.decode(),
         "better": b.better.decode(), "user_set": bool(b.user_set), "threads": _lib.dc_get_threads(),
         "int8": b.int8.decode(), "int8_check": b.int8_check.decode(), "int8_auto": bool(b.int8_dot)}
    if rates:
        f, i = ctypes.c_double(), ctypes.c_double()
        _lib.dc_compute_rates(ctypes.byref(f), ctypes.byref(i))
        d.update(f32_macs=f.value, int8_macs=i.value)
    return d


# ---- options ----

def _counts(name, v):
    v = [v] if isinstance(v, (int, np.integer)) else list(v)
    if not 1 <= len(v) <= _capi.DC_MAX_STAGES or not all(isinstance(x, (int, np.integer)) and x >= 1 for x in v):
        raise ValueError(f"{name}: expected 1 to {_capi.DC_MAX_STAGES} positive counts, got {v!r}")
    return [int(x) for x in v]


class Options:
    """The classification options of `dc classify`, checked, and written into
    a dc_classify_opts. Scalar options map one to one onto a field of
    dc_classify_opts through SCALARS: a new one (say a time budget) is one
    entry there once dc.h and _capi.ClassifyOpts have the field."""

    # option: (field of dc_classify_opts, type, test of a valid value, what it must be)
    SCALARS = {
        "trials": ("trials", int, lambda v: 1 <= v <= 1000, "1..1000"),
        "seed": ("seed", int, lambda v: 0 <= v < 1 << 64, "0..2**64-1"),
        "batch": ("batch", int, lambda v: 1 <= v <= 4096, "1..4096"),
        "size": ("size", int, lambda v: v == 0 or 8 <= v <= 4096, "8..4096 pixels (0: the model's)"),
        "alpha": ("ttest_alpha", float, lambda v: 0 < v < 1, "a level in (0, 1)"),
        "min_scores": ("ttest_min_scores", int, lambda v: 2 <= v <= 100000, "2..100000"),
        "max_evals": ("max_evals", int, lambda v: 1 <= v <= 1 << 40, "1..2**40 evaluations"),
        "max_seconds": ("max_seconds", float, lambda v: 0 < v < 1e9, "seconds, > 0"),
    }
    NAMES = ("stop", "samples", "keep", "loss", "calibration", "threads") + tuple(SCALARS)

    def __init__(self, **kw):
        unknown = sorted(set(kw) - set(self.NAMES))
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; options: {', '.join(self.NAMES)}")
        self.given = {k: v for k, v in kw.items() if v is not None}
        self.values = dict(self.given)
        for name, (_, typ, ok, what) in self.SCALARS.items():
            if name in self.values:
                v = self.values[name]
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or \
                        (typ is int and int(v) != v) or not ok(typ(v)):
                    raise ValueError(f"{name}: {v!r} is not {what}")
                self.values[name] = typ(v)
        stop = self.values.get("stop")
        if stop is not None and stop not in _capi.STOP:
            raise ValueError(f"stop: {stop!r}: auto, adaptive, sequential, calibrated or screened")
        if self.values.get("loss", "l2") not in _capi.LOSS:
            raise ValueError(f"loss: {self.values['loss']!r}: l2, l1 or huber")
        self.samples = _counts("samples", self.values["samples"]) if "samples" in self.values else None
        self.keep = _counts("keep", self.values["keep"]) if "keep" in self.values else None
        if self.keep is not None and len(self.keep) != len(self.samples or [50, 500]):
            raise ValueError("keep needs as many counts as samples")
        self.calibration = _calibration(self.values["calibration"]) if "calibration" in self.values else None
        t = self.values.get("threads")
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= 1024):
            raise ValueError(f"threads: {t!r} is not a thread count (1..1024)")

    def rule(self, model, n_classes):
        """The stopping rule these options run on model for n_classes classes
        and the library's note (dc.h: dc_classify_rule): stop "auto" (the
        default) is calibrated with a calibration (screened above
        dc.h's DC_SCREENED_FROM classes on), else the t-test."""
        note = ctypes.c_char_p()
        o = self.to_c(model, n_classes)
        k = _lib.dc_classify_rule(model._m, ctypes.byref(o), n_classes, ctypes.byref(note))
        return _lib.dc_stop_name(k).decode(), (note.value or b"").decode()

    def to_c(self, model, n_classes):
        """A dc_classify_opts; keeps the calibration arrays it points to alive on self."""
        o = _capi.ClassifyOpts()
        _lib.dc_classify_opts_default(ctypes.byref(o))
        if self.samples is not None:
            o.n_stages = len(self.samples)
            for i, v in enumerate(self.samples):
                o.samples[i] = v
        if self.keep is not None:
            for i, v in enumerate(self.keep):
                o.keep[i] = v
        o.loss = _capi.LOSS[self.values.get("loss", "l2")]
        if "stop" in self.values:
            o.stop = _capi.STOP[self.values["stop"]]
        for name, (field, typ, _, _) in self.SCALARS.items():
            if name in self.values:
                setattr(o, field, self.values[name])
        if self.calibration is not None:
            t, spread = self.calibration
            o.calib_t = t.ctypes.data_as(_capi.c_int_p)
            o.calib_spread = spread.ctypes.data_as(_capi.c_float_p)
            o.n_calib = len(t)
        return o


def _calibration(c):
    """A timestep calibration: a file from `dc calibrate` or `dc eval
    --calibrate`, read and checked by the library (dc.h:
    dc_calibration_load), or a pair (timesteps, spreads), checked by the
    library when it classifies."""
    if isinstance(c, (str, bytes, os.PathLike)):
        cal, err = _capi.Calibration(), _capi.Error()
        st = _lib.dc_calibration_load(ctypes.byref(cal), os.fsencode(c), ctypes.byref(err))
        try:
            _check(st, err)
            t = np.ctypeslib.as_array(cal.t, (cal.n,)).copy()
            s = np.ctypeslib.as_array(cal.spread, (cal.n,)).copy()
        finally:
            _lib.dc_calibration_free(ctypes.byref(cal))
    else:
        t, s = c
    t = np.ascontiguousarray(t, dtype=np.int32)
    s = np.ascontiguousarray(s, dtype=np.float32)
    if t.ndim != 1 or t.shape != s.shape or not len(t):
        raise ValueError("calibration: expected two equally long 1-D sequences (timesteps, spreads)")
    return t, s


# ---- results ----

class Result:
    """One image's classification.

    classes     candidate class names, in the order they were given
    ranking     class names, best first (classes dropped earlier rank below
                those kept longer)
    order       candidate indices, best first (int array)
    mean_error  per candidate: the mean error over the timesteps it was scored on
    scored      per candidate: timesteps (x trials) it was scored on
    vs_best     per candidate: mean of its error minus the best's over the
                timesteps both were scored on (NaN: none shared); for a
                dropped class this, not mean_error, compares with the best
    kept        candidate names still in the running when the rule stopped
                (the prediction alone when decided), by mean error
    evals       denoiser evaluations spent
    timesteps   distinct timesteps evaluated, in evaluation order
    errors      [classes, timesteps] error per class and timestep (NaN: not scored)
    seconds     time of the classification
    stop        the stopping rule that ran: adaptive, sequential, calibrated or screened
    note        "" or, when the default ran the t-test for lack of a
                calibration, how to make one
    decided     False when a budget (max_evals, max_seconds) stopped the rule
                with several classes left: the prediction is the best so far
    left        classes still in the running when it stopped
    image       the path, for a file
    """

    def __init__(self, r, classes, image, trials=1, compute="f32"):
        n, nt = r.n_classes, r.n_timesteps
        self.classes = classes
        self.order = np.ctypeslib.as_array(r.ranking, (n,)).copy()
        self.ranking = [classes[i] for i in self.order]
        self.mean_error = np.ctypeslib.as_array(r.mean_error, (n,)).copy()
        self.scored = np.ctypeslib.as_array(r.n_scored, (n,)).copy()
        self.evals = int(r.n_evals)
        self.timesteps = np.ctypeslib.as_array(r.timesteps, (nt,)).copy() if nt else np.zeros(0, np.int32)
        self.errors = np.ctypeslib.as_array(r.errors, (n, nt)).copy() if nt else np.zeros((n, 0), np.float32)
        self.seconds = float(r.seconds)
        self.decided = not r.undecided
        self.left = int(r.n_left)
        self.vs_best = np.ctypeslib.as_array(r.vs_best, (n,)).copy()
        self.stop = _lib.dc_stop_name(r.stop).decode()
        self.note = (r.note or b"").decode()
        self.image = image
        self.compute = compute
        self.trials = trials

    @property
    def kept(self):
        return self.ranking[:self.left]

    @property
    def prediction(self):
        return self.ranking[0]

    def top(self, k=5):
        """[(class, mean error)] of the k best."""
        return [(self.classes[i], float(self.mean_error[i])) for i in self.order[:k]]

    def to_dict(self, top=5):
        """The object `dc classify --json` prints for this image."""
        d = {"image": self.image} if self.image is not None else {}
        d.update({"prediction": self.prediction,
                  "top": [self._entry(j, i) for j, i in enumerate(self.order[:top])],
                  "compute": self.compute, "stop": self.stop, "note": self.note, "decided": self.decided, "left": self.left, "evals": self.evals, "timesteps": len(self.timesteps),
                  "seconds": self.seconds})
        return d

    def _entry(self, j, i):
        gap = float(self.vs_best[i])
        return {"class": self.classes[i], "kept": j < self.left, "error": float(self.mean_error[i]),
                "scored": int(self.scored[i]), "timesteps": int(self.scored[i]) // self.trials,
                "vs_best": None if gap != gap else gap}

    def __repr__(self):
        best = ", ".join(f"{c} {e:.5f}" for c, e in self.top(3))
        return f"<dc.Result {self.prediction!r}: {best}; {self.evals} evals ({self.stop}), {self.seconds:.2f} s>"


# ---- arrays ----

def _pixels(a):
    """uint8 RGB pixels [h, w, 3], C-contiguous: the array itself when it is
    one already; grey [h, w] (or [h, w, 1]) repeated into three channels as
    the image loader does for grey files; RGBA without its alpha, as the
    loader reads RGBA files."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise TypeError(f"image: expected uint8 pixels, got {a.dtype} (scale to 0..255 and use .astype(np.uint8))")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        rgb = np.empty(a.shape + (3,), np.uint8)
        rgb[...] = a[:, :, None]
        return rgb
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return np.ascontiguousarray(a[:, :, :3])
    raise ValueError(f"image: expected [h, w, 3], [h, w, 4] or [h, w] pixels, got shape {a.shape}")


class _Owned:
    """Memory malloc'd by libdc (a dc_tensor's data), shown to numpy through
    the array interface: the array uses it in place and dc_tensor_free runs
    when the last array viewing it is gone."""

    def __init__(self, t):
        self._t = t
        shape = tuple(t.shape[i] for i in range(t.ndim))
        ptr, typestr = (t.f32, "<f4") if t.f32 else (t.i64, "<i8")
        self.__array_interface__ = {"shape": shape, "typestr": typestr, "version": 3,
                                    "data": (ctypes.cast(ptr, ctypes.c_void_p).value or 0, False)}

    def __del__(self):
        if _lib is not None:
            _lib.dc_tensor_free(ctypes.byref(self._t))


def _tensor(a, name):
    """A dc_tensor viewing a (float -> float32, integer -> int64), copied
    only when its dtype or layout differ; returns (tensor, the array to keep alive)."""
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        a = np.ascontiguousarray(a, dtype=np.int64)
    elif a.dtype.kind == "f":
        a = np.ascontiguousarray(a, dtype=np.float32)
    else:
        raise TypeError(f"{name}: expected a float or integer array, got {a.dtype}")
    if not 1 <= a.ndim <= 8:
        raise ValueError(f"{name}: {a.ndim} dimensions (1 to 8 allowed)")
    t = _capi.Tensor()
    t.ndim = a.ndim
    for i, s in enumerate(a.shape):
        t.shape[i] = s
    if a.dtype == np.int64:
        t.i64 = a.ctypes.data_as(_capi.c_int64_p)
    else:
        t.f32 = a.ctypes.data_as(_capi.c_float_p)
    return t, a


# ---- the model ----

def default_model():
    """The shipped default model's path (models/default.dcw in the data folder)."""
    for d in _capi.data_dirs(LIBRARY):
        p = os.path.join(d, "models", "default.dcw")
        if os.path.exists(p):
            return p
    raise FileNotFoundError("dc: no default model (models/default.dcw) in " + ", ".join(_capi.data_dirs(LIBRARY)))


class Model:
    """A .dcw model (default: the shipped default model), with a context per
    thread that uses it and the candidate classes encoded once per list.
    Read-only after loading: threads may classify with one Model at once."""

    def __init__(self, path=None, *, skip_checksum=False, compute="f32"):
        self.path = os.fspath(path) if path is not None else default_model()
        self._m = ctypes.c_void_p()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._ctxs, self._classes = [], {}
        err = _capi.Error()
        if compute not in _capi.COMPUTE:
            raise ValueError(f"dc: compute must be one of {', '.join(_capi.COMPUTE)}, not {compute!r}")
        opts = _capi.LoadOpts(skip_checksum=1 if skip_checksum else 0, compute=_capi.COMPUTE[compute])
        _check(_lib.dc_model_load(ctypes.byref(self._m), os.fsencode(self.path), ctypes.byref(opts),
                                  ctypes.byref(err)), err)
        self.family = _lib.dc_model_family(self._m).decode()
        self.compute = _lib.dc_model_compute(self._m).decode()  # "f32" or "int8" (auto resolved)
        self.int8_variant = _lib.dc_model_int8_variant(self._m).decode()
        self.has_calibration = bool(_lib.dc_model_has_calibration(self._m))

    def close(self):
        """Frees the model, its contexts and encoded classes (also on garbage
        collection); no call may be running on it."""
        if getattr(self, "_m", None) and _lib is not None:
            for cl, _ in self._classes.values():
                _lib.dc_classes_free(cl)
            for c in self._ctxs:
                _lib.dc_ctx_free(c)
            _lib.dc_model_free(self._m)
            self._m, self._ctxs, self._classes = None, [], {}

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<dc.Model {self.path!r} family={self.family!r} compute={self.compute!r}>"

    def _ctx(self):
        if not self._m:
            raise ValueError("dc: the model is closed")
        c = getattr(self._local, "ctx", None)
        if c is None:
            c, err = ctypes.c_void_p(), _capi.Error()
            _check(_lib.dc_ctx_new(ctypes.byref(c), self._m, ctypes.byref(err)), err)
            with self._lock:
                self._ctxs.append(c)
            self._local.ctx = c
        return c

    def _encoded(self, classes, template):
        """(dc_classes handle, names) for a class list (None: the model's own)."""
        if isinstance(classes, str):
            raise TypeError("classes: a list of class names, not one string")
        key = (tuple(classes) if classes is not None else None, template)
        with self._lock:
            hit = self._classes.get(key)
        if hit:
            return hit
        cl, err = ctypes.c_void_p(), _capi.Error()
        names = None
        n = 0
        if classes is not None:
            n = len(key[0])
            names = (ctypes.c_char_p * max(n, 1))(*[s.encode() for s in key[0]])
        _check(_lib.dc_classes_new(ctypes.byref(cl), self._ctx(), names, n,
                                   template.encode() if template else None, ctypes.byref(err)), err)
        out = (cl, tuple(_lib.dc_classes_name(cl, i).decode() for i in range(_lib.dc_classes_count(cl))))
        with self._lock:
            if key in self._classes:  # another thread encoded the same list meanwhile
                _lib.dc_classes_free(cl)
                return self._classes[key]
            self._classes[key] = out
        return out

    @property
    def classes(self):
        """The model's own class names (stored in it, as the shipped models have)."""
        return list(self._encoded(None, None)[1])

    def tokenize(self, text):
        """CLIP token ids of a prompt (int64 [77]) for a model with a tokenizer."""
        n = _lib.dc_tokenizer_length(self._m)
        if not n:
            raise Error("unsupported", f"{self.path}: the model has no tokenizer")
        ids = np.zeros(max(n, 128), np.int64)
        count, cut, err = ctypes.c_int(), ctypes.c_int(), _capi.Error()
        _check(_lib.dc_tokenize(self._m, text.encode(), ids.ctypes.data_as(_capi.c_int64_p), ctypes.byref(count),
                                ctypes.byref(cut), ctypes.byref(err)), err)
        return ids[:n]

    def classify(self, image, classes=None, *, template=None, **options):
        """Classifies one image: a file path, or uint8 pixels [h, w, 3] (RGB),
        [h, w, 4] (alpha ignored) or [h, w] (grey). classes: candidate class
        names (default: the model's own); template: the prompt template of a
        text-conditional model (default: the model's). options: see Options.
        Returns a Result."""
        return self._classify([image], classes, template, options, single=True)[0]

    def classify_batch(self, images, classes=None, *, template=None, **options):
        """Classifies each image of an iterable (paths or arrays), or of an
        array [n, h, w, 3] or [n, h, w] (views of it, no copies), with the
        classes encoded once; returns a list of Results. A failing image
        raises dc.Error naming its index."""
        return self._classify(images, classes, template, options, single=False)

    def _classify(self, images, classes, template, options, single):
        opts = Options(**options)
        if isinstance(images, (str, os.PathLike)):
            raise TypeError("classify_batch: a sequence of images (use classify for one)")
        if isinstance(images, np.ndarray) and images.ndim not in (3, 4):
            raise ValueError(f"classify_batch: expected an array [n, h, w, 3] or [n, h, w], got shape {images.shape}")
        ctx = self._ctx()
        cl, names = self._encoded(classes, template)
        copts = opts.to_c(self, len(names))
        threads = opts.values.get("threads")
        before = _lib.dc_get_threads()
        if threads:
            _lib.dc_set_threads(threads)  # OpenMP's count belongs to this thread: set back below
        out = []
        try:
            for i, img in enumerate(images):
                r, err = _capi.Result(), _capi.Error()
                path = None
                if isinstance(img, (str, bytes, os.PathLike)):
                    path = os.fsdecode(img)
                    st = _lib.dc_classify_image(ctx, cl, os.fsencode(img), ctypes.byref(copts), ctypes.byref(r),
                                                ctypes.byref(err))
                else:
                    px = _pixels(img)
                    st = _lib.dc_classify_rgb(ctx, cl, px.ctypes.data, px.shape[1], px.shape[0], ctypes.byref(copts),
                                              ctypes.byref(r), ctypes.byref(err))
                try:
                    if st != 0 and not single:
                        err.msg = f"image {i}: ".encode() + err.msg[:490]
                    _check(st, err)
                    out.append(Result(r, names, path, int(copts.trials), self.compute))
                finally:
                    _lib.dc_result_free(ctypes.byref(r))
        finally:
            if threads:
                _lib.dc_set_threads(before)
        return out

    def forward(self, component, *arrays):
        """Runs one network of the model (dc.h: dc_forward) and returns its
        output as a numpy array that uses the library's buffer in place:
          "dit"  x [n, C, S, S] float, t [n] float, y [n] int -> [n, out_channels, S, S]
          "text" / "text-penultimate"  ids [n, L] int -> [n, L, D]
          "vae"  image [n, 3, h, w] float in [-1, 1] -> latent mean [n, C, h/8, w/8]
          "vae-std"  the same -> (mean, std)
          "unet" sample [n, C, h, w] float, timesteps [n] float, context [n, L, D] float
        Float inputs go in as float32, integer ones as int64, without a copy
        when they are that already (and C-contiguous)."""
        ts, keep = [], []
        for k, a in enumerate(arrays):
            t, arr = _tensor(a, f"input {k}")
            ts.append(t)
            keep.append(arr)
        n = len(ts)
        inputs = (_capi.Tensor * max(n, 1))(*ts)
        outs = (_capi.Tensor * 2)()
        err = _capi.Error()
        st = _lib.dc_forward(self._ctx(), component.encode(), inputs, n, outs, ctypes.byref(err))
        if st != 0:
            _lib.dc_tensor_free(ctypes.byref(outs[0]))
            _lib.dc_tensor_free(ctypes.byref(outs[1]))
            _check(st, err)
        res = [np.asarray(_Owned(_capi.Tensor.from_buffer_copy(outs[i])))
               for i in range(2 if component == "vae-std" else 1)]
        return tuple(res) if component == "vae-std" else res[0]
