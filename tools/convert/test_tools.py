#!/usr/bin/env python3
"""tools/convert/test_tools.py - tests of the Python converter (dcw.py,
safetensors_np.py, torch_pt.py, convert.py and its family detection) and of
the class lists in data/classes/, which the converter and the presets ship.

Plain asserts, run by testing.py: each test is a function named like a
sentence. Everything runs on tiny arrays in a temporary folder and takes a
few seconds.

usage: test_tools.py
"""
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import convert  # noqa: E402
import dcw  # noqa: E402
import testing  # noqa: E402
from dcw import read_dcw, read_dcw_index, write_dcw  # noqa: E402
from safetensors_np import Bf16Tensor, load_tensor, open_safetensors, write_safetensors  # noqa: E402
from testing import test  # noqa: E402
from torch_pt import load_state_dict, state_dict_keys  # noqa: E402

TMP = tempfile.mkdtemp(prefix="dc_tools_")
rng = np.random.default_rng(7)


def tmp(name):
    return os.path.join(TMP, name)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def raises(fn, *words):
    """Asserts fn() raises ValueError whose message holds every word."""
    try:
        fn()
    except ValueError as e:
        for w in words:
            assert w in str(e), f"error {str(e)!r} lacks {w!r}"
        return str(e)
    raise AssertionError(f"no ValueError (wanted one mentioning {words})")


def small_file(name="small.dcw"):
    path = tmp(name)
    write_dcw(path, {"dc.family": "test", "k": 1},
              [("a", randn(3, 4), "f32"), ("b", randn(5), "f32"), ("c", randn(2, 3), "q8")])
    return path


# ---------------------------------------------------------------- dcw

@test
def f32_should_round_trip_exactly():
    path = tmp("f32.dcw")
    ts = {"x": randn(4, 3, 2, 2), "y": randn(7), "z": randn(1, 1)}
    write_dcw(path, {"dc.family": "test"}, [(k, v, "f32") for k, v in ts.items()])
    _, back = read_dcw(path)
    assert list(back) == list(ts)
    for k, v in ts.items():
        dtype, got = back[k]
        assert dtype == "f32" and got.dtype == np.float32 and got.shape == v.shape
        assert np.array_equal(got, v), k


@test
def f16_should_round_trip_within_f16_rounding():
    path = tmp("f16.dcw")
    w = randn(6, 9) * 10
    write_dcw(path, {"dc.family": "test"}, [("w", w, "f16")])
    dtype, got = read_dcw(path)[1]["w"]
    assert dtype == "f16" and got.dtype == np.float32 and got.shape == w.shape
    assert np.array_equal(got, w.astype(np.float16).astype(np.float32))
    rel = np.abs(got - w) / np.abs(w)
    assert rel.max() <= 2.0 ** -11, rel.max()


@test
def f16_should_refuse_values_outside_its_range():
    raises(lambda: write_dcw(tmp("big.dcw"), {"dc.family": "test"},
                             [("w", np.array([[1.0, 1e6]], np.float32), "f16")]), "'w'", "f16 range")


@test
def q8_should_keep_each_element_within_half_a_step():
    w = randn(9, 4, 3, 3)                     # a conv weight: rows are output channels
    w[2] *= 1000
    w[5] *= 1e-4
    w[7] = 0                                  # all-zero row: scale 1
    q, scale = dcw.quantize_q8(w.reshape(9, -1))
    assert q.dtype == np.int8 and scale.dtype == np.float32
    assert scale[7] == 1 and not q[7].any()
    assert np.abs(q).max() == 127 and q.min() >= -127
    exact = scale.astype(np.float64)[:, None] * q               # in float64: the bound is strict
    err = np.abs(exact - w.reshape(9, -1).astype(np.float64))
    assert np.all(err <= scale[:, None].astype(np.float64) / 2), (err / scale[:, None]).max()

    path = tmp("q8.dcw")
    write_dcw(path, {"dc.family": "test"}, [("w", w, "q8")])
    dtype, got = read_dcw(path)[1]["w"]
    assert dtype == "q8" and got.shape == w.shape
    err = np.abs(got.reshape(9, -1).astype(np.float64) - w.reshape(9, -1))
    # the stored float32 product scale * q adds at most half an ulp of itself
    bound = scale[:, None].astype(np.float64) / 2 + np.abs(got.reshape(9, -1)) * 2.0 ** -24
    assert np.all(err <= bound), (err / bound).max()
    assert np.array_equal(got.reshape(9, -1), dcw.dequantize_q8(q, scale))


@test
def q8_should_round_halves_to_even_and_use_max_over_127():
    w = np.array([[127, 0.5, 1.5, 2.5, -2.5, -0.5]], np.float32)
    q, scale = dcw.quantize_q8(w)
    assert scale[0] == 1
    assert q.tolist() == [[127, 0, 2, 2, -2, 0]], q.tolist()
    q, scale = dcw.quantize_q8(np.array([[-3.0, 1.0]], np.float32))
    assert scale[0] == np.float32(3) / np.float32(127) and q.tolist() == [[-127, 42]], q.tolist()


@test
def q8_should_pad_its_bytes_to_4_before_the_scales():
    path = tmp("q8pad.dcw")
    w = randn(3, 5)                           # 15 bytes of q, 1 of padding, 3 scales
    write_dcw(path, {"dc.family": "test"}, [("w", w, "q8")])
    _, entries, _ = read_dcw_index(path)
    e = entries[0]
    assert e.nbytes == 16 + 12, e.nbytes
    with open(path, "rb") as f:
        f.seek(e.offset)
        raw = f.read(e.nbytes)
    q, scale = dcw.quantize_q8(w)
    assert raw[:15] == q.tobytes() and raw[15:16] == b"\0"
    assert np.array_equal(np.frombuffer(raw[16:], "<f4"), scale)


@test
def layout_should_follow_the_spec_byte_for_byte():
    path = small_file("layout.dcw")
    data = open(path, "rb").read()
    (magic, version, hsize, fsize, moff, msize, toff, ntens, nmeta, doff) = dcw.HEADER.unpack(data[:64])
    assert (magic, version, hsize, moff) == (b"DCWEIGHT", 1, 64, 64)
    assert fsize == len(data) and fsize % 8 == 0
    assert (ntens, nmeta) == (3, 3)                       # dc.family, dc.source, k
    assert toff % 8 == 0 and toff >= moff + msize and doff % 64 == 0
    assert not any(data[moff + msize:toff]), "gap after metadata is not zero"
    # the metadata starts with dc.family, kind 3, count 1, "test"
    assert data[64:64 + 2 + 9 + 1 + 4 + 4 + 4] == (struct.pack("<H", 9) + b"dc.family" +
                                                    struct.pack("<BII", 3, 1, 4) + b"test")
    _, entries, _ = read_dcw_index(path)
    end = doff
    for e in entries:
        assert e.offset % 64 == 0 and e.offset >= end
        assert not any(data[end:e.offset]), f"gap before {e.name} is not zero"
        end = e.offset + e.nbytes
    assert not any(data[end:fsize - 16]) and fsize - 16 - end < 8
    s1, s2 = struct.unpack("<QQ", data[-16:])
    words = [int(x) for x in np.frombuffer(data[:-16], "<u8")]
    assert s1 == sum(words) % 2 ** 64
    assert s2 == sum((i + 1) * x for i, x in enumerate(words)) % 2 ** 64


@test
def checksum_should_match_plain_python_across_chunks_and_wrapping():
    path = tmp("sum.bin")
    words = np.array([2 ** 64 - 1, 2 ** 63, 12345, 2 ** 64 - 7] * 37, dtype="<u8")
    words[::3] ^= np.uint64(0xDEADBEEFCAFEF00D)
    words.tofile(path)
    want1 = sum(int(x) for x in words) % 2 ** 64
    want2 = sum((i + 1) * int(x) for i, x in enumerate(words)) % 2 ** 64
    with open(path, "rb") as f:
        for chunk in (8, 24, 1000, 1 << 20):
            assert dcw.checksum(f, words.nbytes, chunk=chunk) == (want1, want2), chunk


@test
def read_should_refuse_a_flipped_byte():
    path = small_file("flip.dcw")
    data = bytearray(open(path, "rb").read())
    _, entries, _ = read_dcw_index(path)
    for pos in (70, entries[1].offset + 2, len(data) - 3):   # metadata, tensor data, checksum
        bad = bytearray(data)
        bad[pos] ^= 0x10
        p = tmp("flipped.dcw")
        open(p, "wb").write(bad)
        raises(lambda: read_dcw(p), "checksum")


@test
def read_should_refuse_swapped_words():
    path = small_file("swap.dcw")
    data = bytearray(open(path, "rb").read())
    _, entries, _ = read_dcw_index(path)
    o = entries[0].offset
    data[o:o + 16] = data[o + 8:o + 16] + data[o:o + 8]
    open(path, "wb").write(data)
    raises(lambda: read_dcw(path), "checksum")


@test
def read_should_refuse_truncation_and_trailing_bytes():
    path = small_file("trunc.dcw")
    data = open(path, "rb").read()
    for n in (len(data) - 8, len(data) - 1, 100):
        open(path, "wb").write(data[:n])
        raises(lambda: read_dcw(path), "truncated")
    open(path, "wb").write(data[:40])
    raises(lambda: read_dcw(path), "too small")
    open(path, "wb").write(data + b"\0" * 8)
    raises(lambda: read_dcw(path), "trailing bytes")


@test
def read_should_refuse_a_wrong_magic_or_version():
    path = small_file("magic.dcw")
    data = bytearray(open(path, "rb").read())
    bad = bytearray(data)
    bad[0:8] = b"GGUFGGUF"
    open(path, "wb").write(bad)
    raises(lambda: read_dcw(path), "not a dc weight file")
    bad = bytearray(data)
    bad[8:12] = struct.pack("<I", 2)
    open(path, "wb").write(bad)
    raises(lambda: read_dcw(path), "version 2, this build reads 1")


@test
def metadata_should_round_trip_every_kind():
    path = tmp("meta.dcw")
    meta = {
        "dc.family": "test",
        "an.int": -(2 ** 63), "big.int": 2 ** 63 - 1, "a.bool": True, "np.int": np.int64(5),
        "a.float": 1e-300, "np.float": np.float32(0.25),
        "a.str": "h\u00e9llo \u4e16\u754c \U0001F600", "empty.str": "",
        "ints": [1, -2, 3], "empty.list": [], "bools": [True, False],
        "floats": [0.5, -1.25, 3e30], "mixed.numbers": [1, 2.5],
        "strs": ["a", "", "\u00e9\u00e8"],
        "cl\u00e9.unicode": 7,
    }
    write_dcw(path, meta, [], source="here")
    back, tensors = read_dcw(path)
    assert tensors == {}
    assert list(back)[:2] == ["dc.family", "dc.source"] and back["dc.source"] == "here"
    want = {"an.int": -(2 ** 63), "big.int": 2 ** 63 - 1, "a.bool": 1, "np.int": 5, "a.float": 1e-300,
            "np.float": 0.25, "a.str": meta["a.str"], "empty.str": "", "ints": [1, -2, 3],
            "empty.list": [], "bools": [1, 0], "floats": [0.5, -1.25, 3e30], "mixed.numbers": [1.0, 2.5],
            "strs": ["a", "", "\u00e9\u00e8"], "cl\u00e9.unicode": 7}
    for k, v in want.items():
        assert back[k] == v and type(back[k]) is type(v), (k, back[k], v)
    # and the kinds on disk: int array for the empty list, float array for mixed numbers
    data = open(path, "rb").read()
    for key, kind in (("empty.list", 4), ("mixed.numbers", 5), ("a.bool", 1), ("strs", 6)):
        k = key.encode()
        i = data.index(struct.pack("<H", len(k)) + k)
        assert data[i + 2 + len(k)] == kind, key


@test
def write_should_refuse_bad_input():
    p = tmp("bad.dcw")
    raises(lambda: write_dcw(p, {}, []), "dc.family")
    raises(lambda: write_dcw(p, {"dc.family": "t"}, [("a", randn(2), "f32"), ("a", randn(2), "f32")]),
           "'a'", "twice")
    raises(lambda: write_dcw(p, {"dc.family": "t"}, [("a", randn(1, 1, 1, 1, 2), "f32")]), "'a'", "dimensions")
    raises(lambda: write_dcw(p, {"dc.family": "t"}, [("a", randn(2), "f8")]), "dtype")
    raises(lambda: write_dcw(p, {"dc.family": "t"}, [("x" * 256, randn(2), "f32")]), "255")
    raises(lambda: write_dcw(p, {"dc.family": "t"}, [("a", np.array([[np.nan]], np.float32), "q8")]),
           "'a'", "NaN")
    try:
        write_dcw(p, {"dc.family": "t", "k": [1, "a"]}, [])
    except TypeError as e:
        assert "'k'" in str(e)
    else:
        raise AssertionError("a mixed list was accepted")


@test
def write_should_take_memmapped_and_float64_inputs():
    raw = tmp("raw.f64")
    w = rng.standard_normal((33, 17))
    w.tofile(raw)
    mm = np.memmap(raw, dtype=np.float64, mode="r", shape=(33, 17))
    path = tmp("mm.dcw")
    old = dcw.CHUNK_ELEMS
    dcw.CHUNK_ELEMS = 50                      # force many chunks on a tiny tensor
    try:
        write_dcw(path, {"dc.family": "test"}, [("a", mm, "f32"), ("b", mm, "f16"), ("c", mm, "q8")])
    finally:
        dcw.CHUNK_ELEMS = old
    _, back = read_dcw(path)
    w32 = w.astype(np.float32)
    assert np.array_equal(back["a"][1], w32)
    assert np.array_equal(back["b"][1], w32.astype(np.float16).astype(np.float32))
    assert np.array_equal(back["c"][1], dcw.dequantize_q8(*dcw.quantize_q8(w32)))


# ---------------------------------------------------------------- safetensors

@test
def safetensors_should_read_back_what_it_wrote():
    path = tmp("a.safetensors")
    ts = {"f32": randn(3, 4), "f16": randn(2, 5).astype(np.float16), "f64": rng.standard_normal(3),
          "i64": np.arange(6, dtype=np.int64).reshape(2, 3), "i32": np.array([-1, 2], np.int32),
          "u8": np.array([1, 255], np.uint8), "bool": np.array([True, False]),
          "scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 3), np.float32)}
    write_safetensors(path, ts, metadata={"format": "pt"})
    got = open_safetensors(path)
    assert sorted(got) == sorted(ts)
    for k, v in ts.items():
        assert isinstance(got[k], np.ndarray)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, (k, got[k].dtype, got[k].shape)
        assert np.array_equal(got[k], v), k
    # memory-mapped, not read into memory
    base = got["f32"]
    while base.base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)


@test
def safetensors_should_decode_bf16_as_the_top_half_of_f32():
    path = tmp("bf16.safetensors")
    w = randn(4, 3)
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)       # truncate to bf16
    want = (bits.astype(np.uint32) << 16).view(np.float32)
    write_safetensors(path, {"w": ("BF16", bits), "b": randn(2)})
    t = open_safetensors(path)["w"]
    assert isinstance(t, Bf16Tensor) and t.shape == (4, 3) and t.ndim == 2
    got = load_tensor(t)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(np.asarray(t), want) and np.array_equal(t[1], want[1])
    assert np.all(np.abs(got - w) <= np.abs(w) * 2.0 ** -7)
    # by hand: 1.0 is 0x3F80, -2.0 is 0xC000
    write_safetensors(path, {"x": ("BF16", np.array([0x3F80, 0xC000], np.uint16))})
    assert load_tensor(open_safetensors(path)["x"]).tolist() == [1.0, -2.0]


@test
def safetensors_should_name_the_tensor_whose_offsets_pass_the_end():
    path = tmp("short.safetensors")
    write_safetensors(path, {"a": randn(2), "last": randn(10)})
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-4])
    raises(lambda: open_safetensors(path), "tensor last: data_offsets past end of file")
    open(path, "wb").write(b"\xff" * 8 + b"{}")
    raises(lambda: open_safetensors(path), "header length")
    open(path, "wb").write(struct.pack("<Q", 2) + b"[]")
    raises(lambda: open_safetensors(path), "JSON object")


# ---------------------------------------------------------------- convert.py

def run_convert(*args):
    p = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), *args],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"convert.py {' '.join(args)} failed: {p.stderr}"
    return p


@test
def convert_should_turn_a_sharded_folder_with_config_into_a_dcw():
    src = tmp("model")
    os.makedirs(src, exist_ok=True)
    w1, w2, b, emb = randn(8, 6), randn(4, 2, 3, 3), randn(8), randn(5, 4)
    write_safetensors(os.path.join(src, "model-00001-of-00002.safetensors"),
                      {"layer.weight": w1, "layer.bias": b,
                       "position_ids": np.arange(5, dtype=np.int64)[None]})
    write_safetensors(os.path.join(src, "model-00002-of-00002.safetensors"),
                      {"conv.weight": w2, "emb": ("BF16", (emb.view(np.uint32) >> 16).astype(np.uint16))})
    with open(os.path.join(src, "config.json"), "w") as f:
        f.write('{"hidden_size": 8, "use_bias": true, "eps": 1e-5, "name": "tiny",'
                ' "channels": [1, 2, 4], "ratios": [0.5, 1], "labels": ["x", "y"],'
                ' "vae": {"scale": 0.18215, "deep": {"n": 3}}, "nothing": null,'
                ' "mixed": [1, "a"], "nested": [[1, 2]], "empty": []}')
    out = tmp("model.dcw")
    p = run_convert(src, "--family", "raw", "-o", out, "--dtype", "q8", "--meta", "extra.n=3", "--meta", "extra.s=hi",
                    "--meta", "extra.l=[1,2]")
    for word in ("position_ids", "config.nothing", "config.mixed", "config.nested"):
        assert word in p.stderr, f"no note about {word}: {p.stderr}"
    meta, ts = read_dcw(out)
    assert meta["dc.family"] == "raw" and "model-00002-of-00002.safetensors" in meta["dc.source"]
    want = {"config.hidden_size": 8, "config.use_bias": 1, "config.eps": 1e-5, "config.name": "tiny",
            "config.channels": [1, 2, 4], "config.ratios": [0.5, 1.0], "config.labels": ["x", "y"],
            "config.vae.scale": 0.18215, "config.vae.deep.n": 3, "config.empty": [],
            "extra.n": 3, "extra.s": "hi", "extra.l": [1, 2]}
    for k, v in want.items():
        assert meta.get(k) == v, (k, meta.get(k), v)
    for k in ("config.nothing", "config.mixed", "config.nested"):
        assert k not in meta, k
    assert sorted(ts) == ["conv.weight", "emb", "layer.bias", "layer.weight"]
    assert ts["layer.weight"][0] == "q8" and ts["conv.weight"][0] == "q8" and ts["emb"][0] == "q8"
    assert ts["layer.bias"][0] == "f32" and np.array_equal(ts["layer.bias"][1], b)
    assert ts["conv.weight"][1].shape == (4, 2, 3, 3)
    assert np.abs(ts["layer.weight"][1] - w1).max() <= np.abs(w1).max() / 127

    p = run_convert("--info", out)
    for word in ("config.channels", "layer.weight", "q8", "[4, 2, 3, 3]",
                 f"total parameters: {8 * 6 + 4 * 18 + 8 + 20}", f"file size: {os.path.getsize(out)}"):
        assert word in p.stdout, f"--info lacks {word!r}:\n{p.stdout}"


@test
def convert_should_take_a_single_file_and_keep_1d_tensors_f32():
    path = tmp("single.safetensors")
    w, n = randn(3, 4), randn(4)
    write_safetensors(path, {"w": w, "norm": n, "h": randn(2, 2).astype(np.float16)})
    out = tmp("single.dcw")
    run_convert(path, "--family", "raw", "-o", out, "--dtype", "f16")
    meta, ts = read_dcw(out)
    assert meta["dc.family"] == "raw" and not any(k.startswith("config.") for k in meta)
    assert ts["w"][0] == "f16" and ts["h"][0] == "f16" and ts["norm"][0] == "f32"
    assert np.array_equal(ts["norm"][1], n)
    assert np.array_equal(ts["w"][1], w.astype(np.float16).astype(np.float32))


@test
def convert_info_should_truncate_long_lists():
    path = tmp("long.dcw")
    write_dcw(path, {"dc.family": "test", "long": list(range(1000))}, [("x", randn(2), "f32")])
    p = run_convert("--info", path)
    line = next(l for l in p.stdout.splitlines() if l.split()[:1] == ["long"])
    assert "(1000 items)" in line and len(line) < 120, line


@test
def convert_should_store_a_timestep_calibration_and_refuse_a_bad_one():
    good = tmp("calib.txt")
    with open(good, "w") as f:
        f.write("# dc timestep calibration\n# t spread mean count\n10 0.5 0.1 9\n30 0.25 0.1 9\n")
    path = tmp("c.safetensors")
    write_safetensors(path, {"w": randn(2, 2)})
    out = tmp("c.dcw")
    run_convert(path, "--family", "raw", "-o", out, "--calibration", good)
    meta, _ = read_dcw(out)
    assert meta["classify.calib_t"] == [10, 30] and meta["classify.calib_spread"] == [0.5, 0.25], meta
    for bad, word in (("30 0.5\n10 0.5\n", "ascend"), ("10 -1\n", "finite"), ("10\n", "'t spread'"),
                      ("# nothing\n", "no timestep")):
        with open(good, "w") as f:
            f.write(bad)
        p = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), path, "--family", "raw", "-o", out,
                            "--calibration", good], capture_output=True, text=True)
        assert p.returncode != 0 and word in p.stderr, (bad, p.stderr)


@test
def calibration_reader_should_take_the_files_the_engine_takes():
    """The same files as the engine's reader (tests/test_classify.c):
    good_* accepted with their points, bad_* refused."""
    folder = os.path.join(ROOT, "tests", "data", "calibration")
    names = sorted(n for n in os.listdir(folder) if n.startswith(("good_", "bad_")))
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith("good_"):
            got = convert.read_calibration(path)
            assert len(got["classify.calib_t"]) >= 2, name
        else:
            try:
                convert.read_calibration(path)
            except SystemExit as e:
                assert name in str(e), (name, str(e))
            else:
                raise AssertionError(f"{name}: accepted")
    big = convert.read_calibration(os.path.join(folder, "good_dc_calibrate_1500.txt"))
    assert len(big["classify.calib_t"]) == 1500 and big["classify.calib_t"][-1] == 1499
    two = convert.read_calibration(os.path.join(folder, "good_two_columns_blank_lines_tabs.txt"))
    assert two == {"classify.calib_t": [0, 7, 999, 1000], "classify.calib_spread": [0.5, 1.0, 0.25, 3.0]}, two
    print(f"  {sum(n.startswith('good_') for n in names)} good and {sum(n.startswith('bad_') for n in names)} "
          "bad calibration files")


# ---------------------------------------------------------------- which family

DATA = os.path.join(ROOT, "tests", "data")


def tiny_tokenizer(folder):
    """A CLIP-format tokenizer folder of seven tokens and one merge."""
    os.makedirs(folder, exist_ok=True)
    vocab = ["a", "b", "a</w>", "b</w>", "ab</w>", "<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\na b</w>\n")
    return vocab


def json_file(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def cannot_tell(src):
    """detect_family's refusal for src: its message, which must ask for --family."""
    try:
        got = convert.detect_family(src)
    except SystemExit as e:
        msg = str(e)
        assert "cannot tell the model family" in msg and "Pass --family sd|dit|clip|vae|unet|tokenizer|raw" in msg, msg
        return msg
    raise AssertionError(f"{src}: detected {got}, wanted a refusal")


@test
def torch_pt_should_list_a_state_dicts_names_as_loading_it_does():
    pt = os.path.join(DATA, "dit", "s32_p2", "DiT-test-32.pt")
    names = state_dict_keys(pt)
    assert names == list(load_state_dict(pt)) and "x_embedder.proj.weight" in names, names[:5]


@test
def detection_should_tell_each_family_from_what_its_source_says():
    pipe = tmp("pipe")
    json_file(os.path.join(pipe, "model_index.json"), {"_class_name": "StableDiffusionPipeline"})
    single = tmp("v1-single.safetensors")
    write_safetensors(single, {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":
                               randn(4, 2), "model.diffusion_model.out.2.bias": randn(4)})
    ema_only = tmp("ema-only.safetensors")
    write_safetensors(ema_only, {"model.diffusion_model.input_blocks.0.0.weight": randn(2, 2)})
    unet_file = tmp("unet_component/diffusion_pytorch_model.safetensors")
    os.makedirs(os.path.dirname(unet_file), exist_ok=True)
    shutil.copy(os.path.join(DATA, "unet", "sd2_linear", "config.json"), os.path.dirname(unet_file))
    write_safetensors(unet_file, {"conv_in.weight": randn(2, 2)})
    compvis_vae = tmp("first_stage.safetensors")
    write_safetensors(compvis_vae, {"first_stage_model.encoder.conv_in.weight": randn(2, 2),
                                    "first_stage_model.decoder.conv_out.bias": randn(2)})
    tiny_tokenizer(tmp("tokenizer"))
    with open(tmp("bpe_simple_vocab_16e6.txt.gz"), "wb") as f:
        f.write(b"")                             # what detection reads of it is its name
    want = [(pipe, "sd", "model_index.json: StableDiffusionPipeline"),
            (single, "sd", "tensor names"), (ema_only, "sd", "tensor names"),
            (os.path.join(DATA, "dit", "s32_p2"), "dit", "DiT-test-32.pt"),
            (os.path.join(DATA, "dit", "s32_p2", "DiT-test-32.pt"), "dit", "tensor names"),
            (os.path.join(DATA, "clip", "one_layer"), "clip", "architectures CLIPTextModel"),
            (os.path.join(DATA, "clip", "one_layer", "model.safetensors"), "clip", "CLIPTextModel"),
            (os.path.join(DATA, "unet", "sd2_linear"), "unet", "config.json: UNet2DConditionModel"),
            (unet_file, "unet", "UNet2DConditionModel"),
            (os.path.join(DATA, "vae", "new_names"), "vae", "config.json: AutoencoderKL"),
            (os.path.join(DATA, "vae", "compvis_names", "vae.safetensors"), "vae", "tensor names"),
            (compvis_vae, "vae", "tensor names"),
            (tmp("tokenizer"), "tokenizer", "vocab.json and merges.txt"),
            (tmp("bpe_simple_vocab_16e6.txt.gz"), "tokenizer", "merges file")]
    for src, family, why in want:
        got = convert.detect_family(src)
        assert got[0] == family and why in got[1], (src, got, family)


@test
def detection_should_refuse_what_it_cannot_tell_and_ask_for_family():
    raw = tmp("plain.safetensors")
    write_safetensors(raw, {"w": randn(3, 4), "norm": randn(4)})
    assert "plain.safetensors holds 2 tensors (norm, w)" in cannot_tell(raw)
    dit_pipe = tmp("dit_pipeline")
    json_file(os.path.join(dit_pipe, "model_index.json"), {"_class_name": "DiTPipeline"})
    assert "'DiTPipeline'" in cannot_tell(dit_pipe) and "no checkpoint file" in cannot_tell(dit_pipe)
    bert = tmp("bert")
    json_file(os.path.join(bert, "config.json"), {"architectures": ["BertModel"]})
    write_safetensors(os.path.join(bert, "model.safetensors"), {"embeddings.word_embeddings.weight": randn(4, 2)})
    assert "BertModel" in cannot_tell(bert) and "embeddings.word_embeddings.weight" in cannot_tell(bert)
    # a DiT state dict that lacks its label table is not a DiT: told apart, not guessed
    partial = tmp("partial_dit.safetensors")
    write_safetensors(partial, {"x_embedder.proj.weight": randn(4, 2), "final_layer.linear.weight": randn(2, 4)})
    cannot_tell(partial)
    os.makedirs(tmp("empty"), exist_ok=True)
    assert "no checkpoint file" in cannot_tell(tmp("empty"))
    # the command line writes nothing and says why
    out = tmp("plain.dcw")
    p = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), raw, "-o", out],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "cannot tell the model family" in p.stderr and "--family" in p.stderr, p.stderr
    assert not os.path.exists(out)


@test
def convert_without_family_should_write_what_the_named_family_writes():
    vae_cfg = ("--config-vae", os.path.join(DATA, "vae", "new_names", "config.json"))
    for src, family, extra in ((os.path.join(DATA, "clip", "one_layer"), "clip", ()),
                               (os.path.join(DATA, "vae", "compvis_names", "vae.safetensors"), "vae", vae_cfg),
                               (os.path.join(DATA, "dit", "s32_p2"), "dit", ())):
        told, named = tmp(f"told_{family}.dcw"), tmp(f"named_{family}.dcw")
        p = run_convert(src, "-o", told, "--dtype", "q8", *extra)
        assert f"family {family} (from " in p.stderr, p.stderr
        run_convert(src, "--family", family, "-o", named, "--dtype", "q8", *extra)
        (m1, t1), (m2, t2) = read_dcw(told), read_dcw(named)
        assert m1["dc.family"] == family and m1 == m2, (family, m1.get("dc.family"))
        assert list(t1) == list(t2) and len(t1) > 0, family
        for k in t1:
            assert t1[k][0] == t2[k][0] and np.array_equal(t1[k][1], t2[k][1]), (family, k)


@test
def convert_should_write_a_tokenizer_alone_and_take_component_configs():
    vocab = tiny_tokenizer(tmp("tok"))
    out = tmp("tok.dcw")
    run_convert(tmp("tok"), "-o", out)
    meta, ts = read_dcw(out)
    assert meta["dc.family"] == "tokenizer" and not ts, (meta.get("dc.family"), list(ts))
    assert meta["tokenizer.vocab"] == vocab and meta["tokenizer.merges"] == ["a b</w>"], meta["tokenizer.merges"]
    assert (meta["tokenizer.bos_id"], meta["tokenizer.eos_id"], meta["tokenizer.pad_id"]) == (5, 6, 6)
    # --config-vae replaces the config a lone CompVis VAE file would get from its shapes
    cfg = os.path.join(DATA, "vae", "new_names", "config.json")
    run_convert(os.path.join(DATA, "vae", "compvis_names", "vae.safetensors"), "-o", out, "--config-vae", cfg)
    meta, _ = read_dcw(out)
    with open(cfg, encoding="utf-8") as f:
        want = json.load(f)
    assert meta["vae.block_out_channels"] == want["block_out_channels"], meta["vae.block_out_channels"]
    assert meta["vae.norm_num_groups"] == want["norm_num_groups"] != 32, meta["vae.norm_num_groups"]  # 32: guessed
    # --config-unet replaces config.json; a bad one is named
    sd2 = os.path.join(DATA, "unet", "sd2_linear")
    bad = tmp("bad_unet.json")
    json_file(bad, {"_class_name": "UNet2DConditionModel", "block_out_channels": [8, 16], "act_fn": "gelu"})
    p = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), sd2, "-o", out, "--config-unet", bad],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "act_fn = 'gelu'" in p.stderr, p.stderr


# ---------------------------------------------------------------- what a model records of where it came from

# an absolute path of the machine that wrote a file: /dir/..., ~/dir, C:\dir
ABSOLUTE_PATH = re.compile(r"(^|[\s(\"'=:])(/[\w.+-]+/|~/|[A-Za-z]:\\)")


def absolute_paths(meta):
    """The metadata entries whose strings hold an absolute path, as "key: text"."""
    found = []
    for key, value in meta.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and ABSOLUTE_PATH.search(text):
                found.append(f"{key}: {text[:120]}")
    return found


@test
def the_absolute_path_check_should_find_each_kind_and_pass_plain_text():
    bad = {"a": "/srv/build/models/fmnist/sd", "b": "DiT.pt + VAE /home/u/vae", "c": ["x", "~/models/sd"],
           "d": "C:\\Users\\me\\sd", "e": "from (/tmp/x/y)"}
    assert [f.split(":")[0] for f in absolute_paths(bad)] == list(bad), absolute_paths(bad)
    fine = {"a": "sd", "b": "DiT-fmnist.pt + VAE vae", "c": ["/", "a/b", "1/2", "</w>", "/</w>"], "d": 3,
            "e": "tools/train/train_fmnist.py dit --vae (that VAE) --minutes 40", "f": "http://x"}
    assert absolute_paths(fine) == [], absolute_paths(fine)


@test
def convert_should_record_the_sources_base_name_not_its_path():
    raw = tmp("raw_src.safetensors")
    write_safetensors(raw, {"w": randn(3, 4)})
    dit = os.path.join(DATA, "dit", "s32_p2")
    vae = os.path.join(DATA, "vae", "new_names")
    for args, want in (((raw, "--family", "raw"), "raw_src.safetensors (raw_src.safetensors)"),
                       ((dit + os.sep, "--family", "dit"), "DiT-test-32.pt"),
                       ((dit, "--vae", vae), "DiT-test-32.pt + VAE new_names"),
                       ((vae,), "new_names"),
                       ((os.path.join(DATA, "clip", "one_layer"),), "one_layer (model.safetensors)")):
        out = tmp("source.dcw")
        run_convert(*args, "-o", out)
        meta, _, _ = read_dcw_index(out)
        assert meta["dc.source"] == want, (args, meta["dc.source"])
        assert absolute_paths(meta) == [], absolute_paths(meta)


def stored_bytes(path):
    """{tensor name: (dtype, shape, sha256 of its stored bytes)} of a .dcw file."""
    return {name: (dtype, t.shape, hashlib.sha256(t.data).hexdigest())
            for name, t, dtype in dcw.stored_tensors(path)}


@test
def edit_meta_should_change_the_metadata_and_keep_every_tensors_bytes():
    src, out = small_file("edit_src.dcw"), tmp("edited.dcw")
    run_convert("--edit-meta", src, "-o", out, "--meta", "dc.source=somewhere", "--meta", "k=2",
                "--meta", "new.s=hi", "--drop-meta", "k", "--meta", "k=5")
    meta, _, _ = read_dcw_index(out)
    assert list(meta.items()) == [("dc.family", "test"), ("dc.source", "somewhere"), ("k", 5), ("new.s", "hi")], meta
    assert stored_bytes(out) == stored_bytes(src) and len(stored_bytes(src)) == 3
    # q8: copied as stored, not decoded and quantized again
    assert stored_bytes(out)["c"][0] == "q8"
    for args, words in ((("--drop-meta", "nope"), "--drop-meta nope: no such metadata key"),
                        (("--drop-meta", "dc.family"), "every .dcw has it")):
        p = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "--edit-meta", src, "-o", out, *args],
                           capture_output=True, text=True)
        assert p.returncode != 0 and words in p.stderr, p.stderr


@test
def shipped_models_should_say_how_they_were_made_without_a_path_of_this_machine():
    models = sorted(glob.glob(os.path.join(ROOT, "data", "models", "*.dcw")))
    assert len(models) >= 2, models
    for path in models:
        meta, _, _ = read_dcw_index(path)
        assert absolute_paths(meta) == [], (path, absolute_paths(meta))
        assert "tools/train/" in meta.get("dc.training", ""), (path, meta.get("dc.training"))
        # the data set it learnt: one of those the repository trains on (make train, make train-glyphs)
        assert any(name in meta.get("dc.dataset", "") for name in ("Fashion-MNIST", "glyphs1k")), \
            (path, meta.get("dc.dataset"))


# ---------------------------------------------------------------- data/classes

# (list under data/classes, the data set's class count, the preset under
# data/presets whose class section must be the same list, or None)
CLASS_LISTS = [("imagenet.txt", 1000, None), ("food101.txt", 101, "food.txt"),
               ("flowers102.txt", 102, "flowers.txt"), ("aircraft.txt", 100, "aircraft.txt"),
               ("fashion_mnist.txt", 10, "fashion_mnist.txt")]


def list_lines(path, problems):
    """A class list's lines; what makes it unfit as plain UTF-8 lines goes to problems."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(f"{path}: not UTF-8 ({e})")
        text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        problems.append(f"{path}: starts with a byte-order mark")
    if "\r" in text:
        problems.append(f"{path}: has carriage returns")
    if text and not text.endswith("\n"):
        problems.append(f"{path}: the last line has no newline")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def class_list_problems(root):
    """Every problem with root's class lists: a count other than the data
    set's, an empty, padded, commented-out or repeated (case-insensitive)
    name, and a preset whose class section is not the same list."""
    problems = []
    for fname, count, preset in CLASS_LISTS:
        path = os.path.join(root, "data", "classes", fname)
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        names = list_lines(path, problems)
        if len(names) != count:
            problems.append(f"{path}: {len(names)} lines, expected {count}")
        seen = {}
        for i, name in enumerate(names, 1):
            if not name.strip():
                problems.append(f"{path}:{i}: empty line")
                continue
            if name != name.strip() or "\t" in name or "  " in name:
                problems.append(f"{path}:{i}: stray white space in {name!r}")
            if name.startswith("#"):
                problems.append(f"{path}:{i}: {name!r} starts with '#' (dc reads it as a comment)")
            key = name.strip().lower()
            if key in seen:
                problems.append(f"{path}:{i}: {name!r} repeats line {seen[key]}")
            seen.setdefault(key, i)
        if preset:
            ppath = os.path.join(root, "data", "presets", preset)
            lines = list_lines(ppath, problems) if os.path.isfile(ppath) else []
            section = lines[lines.index("classes") + 1:] if "classes" in lines else None
            if section != names:
                problems.append(f"{ppath}: its class section is not {fname}")
    return problems


@test
def class_lists_should_have_their_counts_and_match_their_presets():
    problems = class_list_problems(ROOT)
    assert not problems, "\n".join(problems)


@test
def class_list_check_should_name_each_kind_of_fault():
    root = tmp("lists")
    shutil.copytree(os.path.join(ROOT, "data"), os.path.join(root, "data"),
                    ignore=shutil.ignore_patterns("models", "samples", "calibration"))
    assert not class_list_problems(root)
    classes = os.path.join(root, "data", "classes")
    with open(os.path.join(classes, "aircraft.txt"), encoding="utf-8") as f:
        aircraft = f.read().split("\n")
    aircraft[5] = aircraft[4].upper()
    with open(os.path.join(classes, "aircraft.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(aircraft))
    with open(os.path.join(classes, "flowers102.txt"), "a", encoding="utf-8") as f:
        f.write(" extra flower\n# note\n")
    os.remove(os.path.join(classes, "food101.txt"))
    got = "\n".join(class_list_problems(root))
    for words in ("aircraft.txt:6: " + repr(aircraft[5]) + " repeats line 5", "presets/aircraft.txt: its class",
                  "flowers102.txt: 104 lines, expected 102", "stray white space in ' extra flower'",
                  "flowers102.txt:104: '# note' starts with '#'", "food101.txt: missing"):
        assert words in got, f"{words!r} not in:\n{got}"


if __name__ == "__main__":
    testing.run(TMP)
