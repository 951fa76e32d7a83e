#!/usr/bin/env python3
"""tools/refs/make_test_dcw.py - the small, deterministic .dcw file the C loader tests read.

It holds one metadata entry of every kind and one tensor of every dtype
(f32, f16, q8, and a 1-D f32 bias), drawn from a seeded generator. Next to
OUT.dcw it writes, for each tensor, the float32 values the engine must
decode (f16 widened, q8 as scale * q in float32), named
<OUT stem>_<tensor name with '.' as '_'>.npy, so tests/test_weights.c can
compare bit for bit.

usage: make_test_dcw.py OUT.dcw
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "convert"))
from dcw import dequantize_q8, quantize_q8, read_dcw, write_dcw  # noqa: E402


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_test_dcw.py OUT.dcw")
    out = sys.argv[1]
    rng = np.random.default_rng(1234)
    tensors = [
        ("w.f32", rng.standard_normal((3, 5)).astype(np.float32), "f32"),
        ("w.f16", rng.standard_normal((4, 6)).astype(np.float32), "f16"),
        ("w.q8", rng.standard_normal((5, 7)).astype(np.float32), "q8"),
        ("bias", rng.standard_normal(5).astype(np.float32), "f32"),
    ]
    meta = {
        "dc.family": "test",
        "test.int": 42,
        "test.float": 0.5,
        "test.name": "h\u00e9llo",
        "test.ints": [1, 2, 3],
        "test.floats": [0.25, -1.5],
        "test.words": ["a", "bc", ""],
    }
    write_dcw(out, meta, tensors, source="tools/refs/make_test_dcw.py")

    # what the C side must decode, computed here from the encoding rules
    stem = os.path.splitext(out)[0]
    _, back = read_dcw(out)
    for name, w, dtype in tensors:
        if dtype == "f32":
            want = w
        elif dtype == "f16":
            want = w.astype(np.float16).astype(np.float32)
        else:
            want = dequantize_q8(*quantize_q8(w))
        want = np.ascontiguousarray(want, dtype=np.float32)
        assert np.array_equal(want, back[name][1]), f"{name}: read_dcw disagrees with the encoding"
        path = f"{stem}_{name.replace('.', '_')}.npy"
        np.save(path, want)
        print(f"{path}: {dtype} {list(w.shape)}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
