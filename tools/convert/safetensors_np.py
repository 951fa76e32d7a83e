"""tools/convert/safetensors_np.py - reads (and, for tests, writes) .safetensors files with numpy alone.

Published diffusion checkpoints ship as safetensors: an 8-byte little-endian
header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}},
plus an optional "__metadata__"), then the raw tensor bytes, offsets
relative to the end of the header. The converter needs no torch and no
safetensors package for that: the file is mapped once with np.memmap and
every tensor is a view into it, so nothing is read until it is used.

numpy has no bfloat16; a BF16 tensor is returned as a Bf16Tensor, a small
lazy wrapper that decodes to float32 (bf16 bits are the top half of a
float32's) only when np.asarray / load_tensor is called on it.

    open_safetensors(path) -> {name: np.ndarray or Bf16Tensor}
    load_tensor(t) -> np.ndarray
    write_safetensors(path, tensors, metadata=None)
    component_file(src, part, who) -> (.safetensors path, config.json path) of a diffusers component
    component_source(src, part, who, is_its_config=None) -> (config dict or None, .safetensors path)
"""
import glob
import json
import os
import struct

import numpy as np

# safetensors dtype -> numpy dtype (BF16 is handled apart)
NP_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}
MAX_HEADER = 100 << 20   # a header larger than this is not a real checkpoint


class Bf16Tensor:
    """A bfloat16 tensor kept as its raw uint16 bits (a memmap view) until asked for.

    np.asarray(t) (or load_tensor(t)) gives float32; t[key] decodes only
    that slice. shape, ndim and size behave as on an array.
    """

    def __init__(self, bits):
        self.bits = bits
        self.shape = bits.shape
        self.ndim = bits.ndim
        self.size = bits.size
        self.dtype = np.dtype(np.float32)   # what it decodes to
        self.source_dtype = "BF16"

    @staticmethod
    def decode(bits):
        return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)

    def __array__(self, dtype=None):
        a = self.decode(self.bits)
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key):
        return self.decode(self.bits[key])

    def __len__(self):
        return len(self.bits)

    def __repr__(self):
        return f"Bf16Tensor(shape={self.shape})"


def load_tensor(t):
    """The tensor as an in-memory numpy array (BF16 decoded to float32)."""
    return np.array(t)


def read_header(path):
    """(header dict without __metadata__, metadata dict, data start, file size) of a safetensors file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: {size} bytes, too small for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, MAX_HEADER):
            raise ValueError(f"{path}: header length {n} does not fit in a {size}-byte file "
                             "(not a safetensors file?)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + n, size


def open_safetensors(path):
    """{name: tensor} for every tensor in the file, each a read-only view of one memmap.

    Tensors are np.ndarray (memory-mapped, nothing read yet) except BF16
    ones, which are Bf16Tensor. Raises ValueError naming the tensor on a bad
    entry (unknown dtype, offsets past the end, size not matching shape).
    """
    header, _, start, size = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else None
    out = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name}: entry lacks dtype, shape or data_offsets") from None
        if dtype != "BF16" and dtype not in NP_DTYPES:
            raise ValueError(f"{path}: tensor {name}: dtype {dtype} is not supported")
        npdt = np.dtype("<u2" if dtype == "BF16" else NP_DTYPES[dtype])
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{path}: tensor {name}: bad shape {shape}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets [{begin}, {end}]")
        if start + end > size:
            raise ValueError(f"{path}: tensor {name}: data_offsets past end of file "
                             f"({start + end} > {size} bytes)")
        n = 1
        for d in shape:
            n *= d
        if end - begin != n * npdt.itemsize:
            raise ValueError(f"{path}: tensor {name}: {end - begin} bytes of data, "
                             f"{dtype} {shape} needs {n * npdt.itemsize}")
        view = mm[start + begin:start + end].view(npdt).reshape(shape)
        out[name] = Bf16Tensor(view) if dtype == "BF16" else view
    return out


def _st_dtype(a):
    for k, v in NP_DTYPES.items():
        if np.dtype(v) == a.dtype.newbyteorder("<") or np.dtype(v) == a.dtype:
            return k
    raise ValueError(f"no safetensors dtype for numpy {a.dtype}")


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: array} as safetensors, in the dict's order, data packed without gaps.

    A value may also be (dtype, raw array) to store raw bits under another
    dtype name, e.g. ("BF16", uint16 array) for a bfloat16 tensor.
    """
    header, blobs, pos = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        if isinstance(value, tuple):
            dtype, a = value
            a = np.asarray(a)
        else:
            a = np.asarray(value)
            dtype = _st_dtype(a)
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)          # pad the header to 8 bytes, as the format does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def component_file(src, part, who):
    """(the .safetensors file, the config.json path beside it) of a diffusers
    component given as its folder, as the pipeline folder that holds it in
    part/ (unet, vae), or as the file itself. A folder may hold the f32
    file and an .fp16 variant: the f32 one is taken. who prefixes errors."""
    if os.path.isdir(src):
        if os.path.exists(os.path.join(src, "model_index.json")) and os.path.isdir(os.path.join(src, part)):
            src = os.path.join(src, part)
        files = sorted(glob.glob(os.path.join(src, "*.safetensors")))
        if not files:
            raise SystemExit(f"{who}: {src}: no *.safetensors file in this folder")
        if len(files) > 1:
            pick = [f for f in files if os.path.basename(f) == "diffusion_pytorch_model.safetensors"]
            if not pick:
                raise SystemExit(f"{who}: {src}: several .safetensors files "
                                 f"({', '.join(os.path.basename(f) for f in files)}): name one")
            files = pick
        return files[0], os.path.join(src, "config.json")
    if os.path.isfile(src):
        if not src.endswith(".safetensors"):
            raise SystemExit(f"{who}: {src}: expected a .safetensors file or a folder")
        return src, os.path.join(os.path.dirname(os.path.abspath(src)), "config.json")
    raise SystemExit(f"{who}: {src}: no such file or folder")


def component_source(src, part, who, is_its_config=None):
    """(config dict or None, .safetensors path) of a component as component_file
    finds it; a config.json found beside it counts unless is_its_config(config)
    says it is another component's."""
    path, cfg_path = component_file(src, part, who)
    config = None
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
        if is_its_config and not is_its_config(config):
            config = None
    return config, path
