"""dc._capi - the C API of libdc.so (dc.h) as ctypes declarations, and where
the library is found.

The structures mirror dc.h field for field; python/tests checks their sizes
and offsets against the C compiler's, so a change to dc.h that is not
copied here fails a test instead of corrupting memory.

The library is loaded with ctypes.CDLL, which releases the GIL for the
length of every call (ctypes.PyDLL would hold it): a classification runs
while other Python threads go on.
"""
import ctypes
import ctypes.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SOVERSION = 0  # libdc.so.0: the API these declarations describe

c_int_p = ctypes.POINTER(ctypes.c_int)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_double_p = ctypes.POINTER(ctypes.c_double)
c_int64_p = ctypes.POINTER(ctypes.c_int64)

DC_MAX_STAGES = 8
STATUS = ["ok", "io", "format", "nomem", "invalid", "missing", "unsupported"]  # dc_status
LOSS = {"l2": 0, "l1": 1, "huber": 2}                                        # dc_loss
STOP = {"adaptive": 0, "sequential": 1, "calibrated": 2, "screened": 3, "auto": 4}  # dc_stop


class Error(ctypes.Structure):  # dc_error
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class LoadOpts(ctypes.Structure):  # dc_load_opts
    _fields_ = [("skip_checksum", ctypes.c_int), ("compute", ctypes.c_int)]


COMPUTE = {"f32": 0, "int8": 1, "auto": 2}  # dc_compute


class Tensor(ctypes.Structure):  # dc_tensor
    _fields_ = [("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * 8), ("f32", c_float_p), ("i64", c_int64_p)]


PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_long, ctypes.c_long)


class ClassifyOpts(ctypes.Structure):  # dc_classify_opts
    _fields_ = [("n_stages", ctypes.c_int), ("samples", ctypes.c_int * DC_MAX_STAGES),
                ("keep", ctypes.c_int * DC_MAX_STAGES), ("loss", ctypes.c_int), ("stop", ctypes.c_int),
                ("trials", ctypes.c_int), ("seed", ctypes.c_uint64), ("batch", ctypes.c_int),
                ("ttest_alpha", ctypes.c_double), ("ttest_min_scores", ctypes.c_int),
                ("calib_t", c_int_p), ("calib_spread", c_float_p), ("n_calib", ctypes.c_int),
                ("progress", PROGRESS), ("progress_user", ctypes.c_void_p), ("size", ctypes.c_int),
                ("max_evals", ctypes.c_long), ("max_seconds", ctypes.c_double)]


class Result(ctypes.Structure):  # dc_result
    _fields_ = [("n_classes", ctypes.c_int), ("ranking", c_int_p), ("mean_error", c_double_p),
                ("n_scored", c_int_p), ("n_evals", ctypes.c_long), ("n_timesteps", ctypes.c_int),
                ("timesteps", c_int_p), ("errors", c_float_p), ("seconds", ctypes.c_double),
                ("undecided", ctypes.c_int), ("n_left", ctypes.c_int), ("vs_best", c_double_p),
                ("stop", ctypes.c_int), ("note", ctypes.c_char_p)]


class Calibration(ctypes.Structure):  # dc_calibration
    _fields_ = [("n", ctypes.c_int), ("t", c_int_p), ("spread", c_float_p)]


class BlasInfo(ctypes.Structure):  # dc_blas_info
    _fields_ = [("core", ctypes.c_char * 32), ("cpu_level", ctypes.c_char * 16), ("suggest", ctypes.c_char * 32),
                ("better", ctypes.c_char * 32), ("user_set", ctypes.c_int),
                ("int8", ctypes.c_char * 32), ("int8_check", ctypes.c_char * 256), ("int8_dot", ctypes.c_int)]


# every structure above, by its name in dc.h (for the layout test)
STRUCTS = {"dc_error": Error, "dc_load_opts": LoadOpts, "dc_tensor": Tensor, "dc_classify_opts": ClassifyOpts, "dc_result": Result,
           "dc_blas_info": BlasInfo, "dc_calibration": Calibration}

P = ctypes.c_void_p  # opaque handles: dc_model*, dc_ctx*, dc_classes*
PP = ctypes.POINTER(ctypes.c_void_p)
E = ctypes.POINTER(Error)
S = ctypes.c_int  # dc_status

SIGNATURES = {  # name: (restype, argtypes)
    "dc_version": (ctypes.c_char_p, []),
    "dc_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "dc_model_load": (S, [PP, ctypes.c_char_p, ctypes.POINTER(LoadOpts), E]),
    "dc_model_free": (None, [P]),
    "dc_model_family": (ctypes.c_char_p, [P]),
    "dc_model_has_calibration": (ctypes.c_int, [P]),
    "dc_tokenize": (S, [P, ctypes.c_char_p, c_int64_p, c_int_p, c_int_p, E]),
    "dc_tokenizer_length": (ctypes.c_int, [P]),
    "dc_ctx_new": (S, [PP, P, E]),
    "dc_ctx_free": (None, [P]),
    "dc_forward": (S, [P, ctypes.c_char_p, ctypes.POINTER(Tensor), ctypes.c_int, ctypes.POINTER(Tensor), E]),
    "dc_tensor_free": (None, [ctypes.POINTER(Tensor)]),
    "dc_classify_opts_default": (None, [ctypes.POINTER(ClassifyOpts)]),
    "dc_result_free": (None, [ctypes.POINTER(Result)]),
    "dc_classify_rule": (ctypes.c_int, [P, ctypes.POINTER(ClassifyOpts), ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]),
    "dc_stop_name": (ctypes.c_char_p, [ctypes.c_int]),
    "dc_calibration_load": (S, [ctypes.POINTER(Calibration), ctypes.c_char_p, E]),
    "dc_calibration_free": (None, [ctypes.POINTER(Calibration)]),
    "dc_classes_new": (S, [PP, P, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_char_p, E]),
    "dc_classes_free": (None, [P]),
    "dc_classes_count": (ctypes.c_int, [P]),
    "dc_classes_truncated": (ctypes.c_int, [P]),
    "dc_classes_name": (ctypes.c_char_p, [P, ctypes.c_int]),
    "dc_classify_image": (S, [P, P, ctypes.c_char_p, ctypes.POINTER(ClassifyOpts), ctypes.POINTER(Result), E]),
    "dc_classify_rgb": (S, [P, P, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ClassifyOpts),
                            ctypes.POINTER(Result), E]),
    "dc_set_threads": (None, [ctypes.c_int]),
    "dc_get_threads": (ctypes.c_int, []),
    "dc_blas_check": (None, [ctypes.POINTER(BlasInfo)]),
    "dc_model_compute": (ctypes.c_char_p, [P]),
    "dc_model_int8_variant": (ctypes.c_char_p, [P]),
    "dc_compute_rates": (None, [ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
}


def _repository():
    """The repository root when this module is used from the tree (python/dc/), else None."""
    root = os.path.dirname(os.path.dirname(HERE))
    return root if os.path.exists(os.path.join(root, "dc.h")) and os.path.isdir(os.path.join(root, "data")) else None


def candidates():
    """Where libdc.so is looked for, in order: $DC_LIBRARY; the repository's
    build (make shared) when used from the tree; the installed library
    (the dynamic linker's search, then the usual prefixes)."""
    out = []
    if os.environ.get("DC_LIBRARY"):
        return [os.environ["DC_LIBRARY"]]
    repo = _repository()
    if repo:
        out.append(os.path.join(repo, "build", "release", "libdc.so"))
    out.append(f"libdc.so.{SOVERSION}")
    found = ctypes.util.find_library("dc")
    if found:
        out.append(found)
    out += [f"/usr/local/lib/libdc.so.{SOVERSION}", f"/usr/lib/libdc.so.{SOVERSION}"]
    return out


def load():
    """The loaded library (ctypes.CDLL) with every signature declared, and its path."""
    tried = []
    for path in candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (absent)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        version = lib.dc_version().decode()
        if version.split(".")[0] != str(SOVERSION):
            raise ImportError(f"dc: {path} is libdc {version}; this module needs major version {SOVERSION}")
        return lib, _path_of(lib, path)
    raise ImportError("dc: libdc.so not found (tried: " + "; ".join(tried) + "). Build it in the repository "
                      "with `make shared`, install it with `make install`, or set DC_LIBRARY to its path")


def _path_of(lib, fallback):
    """The file the dynamic linker actually loaded for lib (its data folder is found from there)."""
    try:
        info = ctypes.CDLL(None).dladdr  # glibc exports dladdr from libc.so.6 since 2.34
    except AttributeError:
        return fallback

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    d = DlInfo()
    info.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    info.restype = ctypes.c_int
    if info(ctypes.cast(lib.dc_version, ctypes.c_void_p), ctypes.byref(d)) and d.dli_fname:
        return os.path.realpath(d.dli_fname.decode())
    return fallback


def data_dirs(library_path):
    """Where the shipped data (models, presets) is looked for: $DC_DATA; the
    repository's data/ from the tree; share/dc beside the library's lib/."""
    out = []
    if os.environ.get("DC_DATA"):
        out.append(os.environ["DC_DATA"])
    repo = _repository()
    if repo:
        out.append(os.path.join(repo, "data"))
    libdir = os.path.dirname(os.path.realpath(library_path)) if os.sep in library_path else ""
    if libdir:
        prefix = os.path.dirname(libdir)
        if os.path.basename(prefix) == "lib":  # lib/<multiarch>/
            prefix = os.path.dirname(prefix)
        out.append(os.path.join(prefix, "share", "dc"))
    out += ["/usr/local/share/dc", "/usr/share/dc"]
    return out
