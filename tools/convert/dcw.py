"""tools/convert/dcw.py - writes and reads dc's .dcw weight files (docs/dcw-format.md).

The converter (tools/convert/convert.py) turns a model's published checkpoint into
one .dcw file that the engine mmaps; this module is the only Python code
that knows the byte layout. It needs nothing but numpy.

Writing streams: the whole layout (every offset) is computed first from the
tensors' shapes, then each tensor is encoded in chunks of about a million
elements and written, so a multi-GB checkpoint read through np.memmap never
sits in memory at once. The checksum is then computed by re-reading the
written file in chunks, with wrapping uint64 numpy arithmetic.

Reading (read_dcw) validates the header, size and checksum and decodes every
tensor to float32; read_dcw_index does the same checks without decoding, for
`convert.py --info` on big files.

    write_dcw(path, meta, tensors, source="")
    read_dcw(path) -> (meta, {name: (dtype, float32 array)})
    read_dcw_index(path) -> (meta, [TensorEntry, ...], file_size)
    stored_tensors(path) -> [(name, Stored, dtype), ...]   (for write_dcw)
    source_name(path) -> what "dc.source" records of a converted path
"""
import os
import struct
from collections import namedtuple

import numpy as np

MAGIC = b"DCWEIGHT"
VERSION = 1
HEADER_SIZE = 64
CHECKSUM_SIZE = 16
HEADER = struct.Struct("<8sIIQQQQIIQ")  # the 64-byte header, field by field
assert HEADER.size == HEADER_SIZE

DTYPES = {"f32": 0, "f16": 1, "q8": 2}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

KIND_INT, KIND_FLOAT, KIND_STR, KIND_INTS, KIND_FLOATS, KIND_STRS = 1, 2, 3, 4, 5, 6

CHUNK_ELEMS = 1 << 20          # elements encoded at a time when writing
CHECKSUM_CHUNK = 4 << 20       # bytes read at a time for the checksum (multiple of 8)
MASK64 = (1 << 64) - 1

TensorEntry = namedtuple("TensorEntry", "name dtype shape offset nbytes")
# a tensor's bytes exactly as a .dcw stores them: write_dcw copies them
# unchanged (re-quantizing a decoded q8 tensor need not give the same bytes)
Stored = namedtuple("Stored", "shape data")


def source_name(path):
    """What "dc.source" records of a path the converter read: its base name
    (a folder's or a file's), never where it lay on the machine that ran the
    converter, which means nothing to the model's users."""
    return os.path.basename(os.path.normpath(os.path.abspath(path)))


def align(n, a):
    return (n + a - 1) // a * a


# ---------------------------------------------------------------- sizes

def numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def q8_layout(shape):
    """(rows, cols) of a q8 tensor: rows = shape[0], cols = numel / rows."""
    rows = int(shape[0])
    cols = numel(shape) // rows if rows else 0
    return rows, cols


def tensor_nbytes(dtype, shape):
    """Bytes a tensor of this dtype and shape takes in the data section."""
    if dtype == "f32":
        return 4 * numel(shape)
    if dtype == "f16":
        return 2 * numel(shape)
    if dtype == "q8":
        rows, cols = q8_layout(shape)
        return align(rows * cols, 4) + 4 * rows
    raise ValueError(f"unknown dtype {dtype!r} (want f32, f16 or q8)")


# ---------------------------------------------------------------- q8

def quantize_q8(w):
    """Quantizes a 2-D block of rows: returns (q int8 [rows, cols], scale float32 [rows]).

    scale = max|row| / 127 (in float32; 1 for an all-zero row), q =
    round-half-to-even(w / scale) clipped to [-127, 127]. The division is done
    in float64 on the float32 weights, so the result does not depend on
    float32 rounding of w / scale.
    """
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError("q8: weights contain NaN or infinity")
    rows = w.shape[0]
    if w.shape[1] == 0:
        return np.zeros(w.shape, np.int8), np.ones(rows, np.float32)
    amax = np.abs(w).max(axis=1)
    scale = amax / np.float32(127)          # float32 / float32: correctly rounded
    scale[amax == 0] = 1
    q = np.rint(w.astype(np.float64) / scale.astype(np.float64)[:, None])
    return np.clip(q, -127, 127).astype(np.int8), scale.astype(np.float32)


def dequantize_q8(q, scale):
    """What a reader computes: scale[r] * q[r, c], in float32."""
    return np.asarray(scale, np.float32)[:, None] * np.asarray(q).astype(np.float32)


# ---------------------------------------------------------------- metadata

def _meta_kind(key, value):
    """(kind, normalised value) for one metadata value, or TypeError."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (bool, np.bool_)):
        return KIND_INT, int(value)
    if isinstance(value, (int, np.integer)):
        return KIND_INT, int(value)
    if isinstance(value, (float, np.floating)):
        return KIND_FLOAT, float(value)
    if isinstance(value, str):
        return KIND_STR, value
    if isinstance(value, (list, tuple)):
        items = list(value)
        if all(isinstance(v, (bool, int, np.bool_, np.integer)) for v in items):
            return KIND_INTS, [int(v) for v in items]          # includes the empty list
        if all(isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) for v in items):
            return KIND_FLOATS, [float(v) for v in items]      # ints mixed with floats
        if all(isinstance(v, str) for v in items):
            return KIND_STRS, items
        raise TypeError(f"metadata {key!r}: a list must hold only numbers or only strings")
    raise TypeError(f"metadata {key!r}: unsupported value type {type(value).__name__}")


def _pack_str(s):
    b = s.encode("utf-8")
    return struct.pack("<I", len(b)) + b


def _pack_name(what, name):
    b = name.encode("utf-8")
    if not 1 <= len(b) <= 255:
        raise ValueError(f"{what} {name!r}: must be 1..255 bytes of UTF-8, is {len(b)}")
    return struct.pack("<H", len(b)) + b


def _pack_meta_entry(key, value):
    kind, v = _meta_kind(key, value)
    out = [_pack_name("metadata key", key), struct.pack("<B", kind)]
    if kind == KIND_INT:
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError(f"metadata {key!r}: {v} does not fit in an i64")
        out.append(struct.pack("<Iq", 1, v))
    elif kind == KIND_FLOAT:
        out.append(struct.pack("<Id", 1, v))
    elif kind == KIND_STR:
        out.append(struct.pack("<I", 1) + _pack_str(v))
    elif kind == KIND_INTS:
        if any(not -(1 << 63) <= x < (1 << 63) for x in v):
            raise ValueError(f"metadata {key!r}: a value does not fit in an i64")
        out.append(struct.pack("<I", len(v)) + np.array(v, dtype="<i8").tobytes())
    elif kind == KIND_FLOATS:
        out.append(struct.pack("<I", len(v)) + np.array(v, dtype="<f8").tobytes())
    else:
        out.append(struct.pack("<I", len(v)) + b"".join(_pack_str(s) for s in v))
    return b"".join(out)


# ---------------------------------------------------------------- checksum

def checksum(f, nbytes, chunk=CHECKSUM_CHUNK):
    """(s1, s2) over the first nbytes (a multiple of 8) of the open binary file f.

    s1 = sum w[i], s2 = sum (i + 1) * w[i], both mod 2^64, w the file's
    little-endian u64 words. Each chunk is summed in numpy uint64 (which
    wraps); the per-chunk sums are combined as Python ints masked to 64 bits.
    """
    if nbytes % 8:
        raise ValueError(f"checksum: {nbytes} bytes is not a whole number of u64 words")
    chunk -= chunk % 8
    s1 = s2 = 0
    f.seek(0)
    word = 0                                    # global index of the chunk's first word
    with np.errstate(over="ignore"):
        while word * 8 < nbytes:
            want = min(chunk, nbytes - word * 8)
            buf = f.read(want)
            if len(buf) != want:
                raise ValueError(f"checksum: file ended {nbytes - word * 8 - len(buf)} bytes early")
            w = np.frombuffer(buf, dtype="<u8")
            idx = np.arange(word + 1, word + 1 + w.size, dtype=np.uint64)
            s1 = (s1 + int(w.sum(dtype=np.uint64))) & MASK64
            s2 = (s2 + int((idx * w).sum(dtype=np.uint64))) & MASK64
            word += w.size
    return s1, s2


# ---------------------------------------------------------------- writing

def _encode(arr, dtype):
    """Yields the bytes of one tensor in its stored form, a chunk at a time."""
    if dtype in ("f32", "f16"):
        flat = arr.reshape(-1)
        out = "<f4" if dtype == "f32" else "<f2"
        for i in range(0, flat.size, CHUNK_ELEMS):
            src = flat[i:i + CHUNK_ELEMS]
            with np.errstate(over="ignore"):      # f16 overflow is caught just below
                enc = src.astype(out)
            if dtype == "f16":
                bad = np.isinf(enc) & np.isfinite(src)
                if bad.any():
                    raise ValueError(f"value {src[bad][0]} is outside the f16 range (|x| <= 65504)")
            yield enc.tobytes()
        return
    rows, cols = q8_layout(arr.shape)
    w = arr.reshape(rows, cols)
    step = max(1, CHUNK_ELEMS // max(cols, 1))
    scales = []
    for r in range(0, rows, step):
        q, s = quantize_q8(w[r:r + step])
        scales.append(s)
        yield q.tobytes()
    yield bytes(align(rows * cols, 4) - rows * cols)
    for s in scales:
        yield s.astype("<f4").tobytes()


def write_dcw(path, meta, tensors, source=""):
    """Writes a .dcw file.

    meta: dict key -> int, float, str, or list of int / float / str (bools
    become ints; an empty list is an int array). It must hold "dc.family";
    "dc.source" is set to `source` (a "dc.source" already in meta is kept
    when source is empty). Both are written first.
    tensors: iterable of (name, array, dtype), dtype "f32", "f16" or "q8";
    arrays may be np.memmap views or anything np.asarray accepts, or Stored
    bytes (copied as they are). Only one tensor is converted at a time.
    """
    meta = dict(meta)
    family = meta.pop("dc.family", None)
    if not isinstance(family, str) or not family:
        raise ValueError("metadata must hold 'dc.family', a non-empty string")
    old_source = meta.pop("dc.source", "")
    meta = {"dc.family": family, "dc.source": source or old_source, **meta}
    meta_block = b"".join(_pack_meta_entry(k, v) for k, v in meta.items())

    tensors = list(tensors)
    entries, seen = [], set()
    for name, arr, dtype in tensors:
        if name in seen:
            raise ValueError(f"tensor {name!r}: the name appears twice")
        seen.add(name)
        if dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r} (want f32, f16 or q8)")
        shape = tuple(int(d) for d in (arr.shape if isinstance(arr, Stored) else np.shape(arr)))
        if not 1 <= len(shape) <= 4:
            raise ValueError(f"tensor {name!r}: {len(shape)} dimensions, a .dcw holds 1 to 4")
        entries.append([name, dtype, shape, 0, tensor_nbytes(dtype, shape)])

    table_offset = align(HEADER_SIZE + len(meta_block), 8)
    table_size = sum(2 + len(e[0].encode("utf-8")) + 2 + 8 * len(e[2]) + 16 for e in entries)
    data_offset = align(table_offset + table_size, 64)
    pos = data_offset
    for e in entries:
        e[3] = pos
        pos = align(pos + e[4], 64)
    end_of_data = entries[-1][3] + entries[-1][4] if entries else data_offset
    checksum_offset = align(end_of_data, 8)
    file_size = checksum_offset + CHECKSUM_SIZE

    table = b"".join(
        _pack_name("tensor", name) + struct.pack(f"<BB{len(shape)}QQQ", DTYPES[dtype], len(shape), *shape, off, nb)
        for name, dtype, shape, off, nb in entries)
    assert len(table) == table_size
    header = HEADER.pack(MAGIC, VERSION, HEADER_SIZE, file_size, HEADER_SIZE, len(meta_block),
                         table_offset, len(entries), len(meta), data_offset)

    with open(path, "w+b") as f:
        f.write(header)
        f.write(meta_block)
        f.write(bytes(table_offset - f.tell()))
        f.write(table)
        for (name, arr, dtype), (_, _, _, off, nb) in zip(tensors, entries):
            f.write(bytes(off - f.tell()))
            try:
                written = 0
                pieces = [arr.data] if isinstance(arr, Stored) else _encode(np.asarray(arr), dtype)
                for piece in pieces:
                    f.write(piece)
                    written += len(piece)
            except ValueError as e:
                raise ValueError(f"tensor {name!r}: {e}") from None
            assert written == nb, (name, written, nb)
        f.write(bytes(checksum_offset - f.tell()))
        f.flush()
        s1, s2 = checksum(f, checksum_offset)
        f.seek(checksum_offset)
        f.write(struct.pack("<QQ", s1, s2))
        assert f.tell() == file_size


# ---------------------------------------------------------------- reading

class _Cursor:
    """Reads little-endian fields from a bytes block, refusing to run past its end."""

    def __init__(self, buf, base, what):
        self.buf, self.pos, self.base, self.what = buf, 0, base, what

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.what}: {what} at byte {self.base + self.pos} runs past the end")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt, what):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))

    def text(self, n, what):
        b = self.take(n, what)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self.what}: {what} at byte {self.base + self.pos - n} is not UTF-8") from None


def _read_meta(block, base, n_meta, path):
    c = _Cursor(block, base, f"{path}: metadata")
    meta = {}
    for _ in range(n_meta):
        (klen,) = c.unpack("H", "key length")
        if klen == 0:
            raise ValueError(f"{path}: metadata key of length 0 at byte {base + c.pos - 2}")
        key = c.text(klen, "key")
        kind, count = c.unpack("BI", f"kind of {key!r}")
        if kind in (KIND_INT, KIND_FLOAT, KIND_STR) and count != 1:
            raise ValueError(f"{path}: metadata {key!r}: count {count}, a scalar needs 1")
        if kind in (KIND_INT, KIND_INTS):
            v = np.frombuffer(c.take(8 * count, f"values of {key!r}"), "<i8").tolist()
        elif kind in (KIND_FLOAT, KIND_FLOATS):
            v = np.frombuffer(c.take(8 * count, f"values of {key!r}"), "<f8").tolist()
        elif kind in (KIND_STR, KIND_STRS):
            v = []
            for _ in range(count):
                (n,) = c.unpack("I", f"string length in {key!r}")
                v.append(c.text(n, f"string in {key!r}"))
        else:
            raise ValueError(f"{path}: metadata {key!r}: unknown kind {kind}")
        meta[key] = v[0] if kind <= KIND_STR else v
    if c.pos != len(block):
        raise ValueError(f"{path}: metadata block has {len(block) - c.pos} bytes after its last entry")
    return meta


def read_dcw_index(path, verify=True):
    """Validates a .dcw file and returns (meta, [TensorEntry], file_size) without decoding tensors."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        real_size = f.tell()
        f.seek(0)
        if real_size < HEADER_SIZE + CHECKSUM_SIZE:
            raise ValueError(f"{path}: {real_size} bytes, too small for a dc weight file")
        (magic, version, header_size, file_size, meta_offset, meta_size, table_offset,
         n_tensors, n_meta, data_offset) = HEADER.unpack(f.read(HEADER_SIZE))
        if magic != MAGIC:
            raise ValueError(f"{path}: not a dc weight file (magic {magic!r})")
        if version != VERSION:
            raise ValueError(f"{path}: version {version}, this build reads {VERSION}")
        if header_size != HEADER_SIZE:
            raise ValueError(f"{path}: header_size {header_size}, expected {HEADER_SIZE}")
        if file_size > real_size:
            raise ValueError(f"{path}: truncated: header says {file_size} bytes, file has {real_size}")
        if file_size < real_size:
            raise ValueError(f"{path}: trailing bytes: header says {file_size} bytes, file has {real_size}")
        if file_size % 8:
            raise ValueError(f"{path}: file_size {file_size} is not a multiple of 8")
        body = file_size - CHECKSUM_SIZE
        if verify:
            s1, s2 = checksum(f, body)
            f.seek(body)
            want1, want2 = struct.unpack("<QQ", f.read(CHECKSUM_SIZE))
            if (s1, s2) != (want1, want2):
                raise ValueError(f"{path}: checksum mismatch: the file is corrupt")
        if meta_offset != HEADER_SIZE:
            raise ValueError(f"{path}: meta_offset {meta_offset}, expected {HEADER_SIZE}")
        if not (meta_offset + meta_size <= table_offset <= data_offset <= body):
            raise ValueError(f"{path}: sections out of order or outside the file "
                             f"(meta {meta_offset}+{meta_size}, table {table_offset}, data {data_offset})")
        if table_offset % 8 or data_offset % 64:
            raise ValueError(f"{path}: table_offset {table_offset} or data_offset {data_offset} misaligned")
        f.seek(meta_offset)
        meta = _read_meta(f.read(meta_size), meta_offset, n_meta, path)
        f.seek(table_offset)
        c = _Cursor(f.read(data_offset - table_offset), table_offset, f"{path}: tensor table")

    entries, seen = [], set()
    for _ in range(n_tensors):
        (nlen,) = c.unpack("H", "name length")
        if nlen == 0:
            raise ValueError(f"{path}: tensor name of length 0 at byte {table_offset + c.pos - 2}")
        name = c.text(nlen, "tensor name")
        if name in seen:
            raise ValueError(f"{path}: tensor {name!r} appears twice")
        seen.add(name)
        code, ndim = c.unpack("BB", f"dtype of {name!r}")
        if code not in DTYPE_NAMES:
            raise ValueError(f"{path}: tensor {name!r}: unknown dtype {code}")
        if not 1 <= ndim <= 4:
            raise ValueError(f"{path}: tensor {name!r}: ndim {ndim}, must be 1..4")
        shape = c.unpack(f"{ndim}Q", f"shape of {name!r}")
        offset, nbytes = c.unpack("QQ", f"offset of {name!r}")
        dtype = DTYPE_NAMES[code]
        if numel(shape) >= 1 << 62:
            raise ValueError(f"{path}: tensor {name!r}: shape {list(shape)} is too large")
        want = tensor_nbytes(dtype, shape)
        if nbytes != want:
            raise ValueError(f"{path}: tensor {name!r}: nbytes {nbytes}, {dtype} {list(shape)} needs {want}")
        if offset % 64 or offset < data_offset or offset + nbytes > body:
            raise ValueError(f"{path}: tensor {name!r}: data at {offset}+{nbytes} is misaligned "
                             f"or outside the data section [{data_offset}, {body})")
        entries.append(TensorEntry(name, dtype, tuple(shape), offset, nbytes))
    by_offset = sorted(entries, key=lambda e: e.offset)
    for a, b in zip(by_offset, by_offset[1:]):
        if a.offset + a.nbytes > b.offset:
            raise ValueError(f"{path}: tensors {a.name!r} and {b.name!r} overlap")
    return meta, entries, file_size


def decode_tensor(buf, entry):
    """float32 array of one tensor from its stored bytes (buf = exactly entry.nbytes bytes)."""
    if entry.dtype == "f32":
        a = np.frombuffer(buf, "<f4").astype(np.float32)
    elif entry.dtype == "f16":
        a = np.frombuffer(buf, "<f2").astype(np.float32)
    else:
        rows, cols = q8_layout(entry.shape)
        q = np.frombuffer(buf, np.int8, count=rows * cols).reshape(rows, cols)
        scale = np.frombuffer(buf, "<f4", count=rows, offset=align(rows * cols, 4))
        a = dequantize_q8(q, scale)
    return a.reshape(entry.shape)


def stored_tensors(path):
    """[(name, Stored, dtype)] of a validated .dcw file, in its order: the
    tensors as write_dcw takes them, to write the same bytes with other metadata."""
    _, entries, _ = read_dcw_index(path)
    out = []
    with open(path, "rb") as f:
        for e in entries:
            f.seek(e.offset)
            out.append((e.name, Stored(e.shape, f.read(e.nbytes)), e.dtype))
    return out


def read_dcw(path):
    """(meta dict, {name: (dtype, float32 array)}) of a .dcw file; ValueError if it is bad."""
    meta, entries, _ = read_dcw_index(path)
    tensors = {}
    with open(path, "rb") as f:
        for e in entries:
            f.seek(e.offset)
            tensors[e.name] = (e.dtype, decode_tensor(f.read(e.nbytes), e))
    return meta, tensors
