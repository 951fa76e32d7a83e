"""tools/convert/torch_pt.py - reads PyTorch's torch.save() files without torch.

A .pt file (PyTorch >= 1.6) is an uncompressed zip: ARCHIVE/data.pkl is a
pickle of the object, and each tensor's storage is a separate entry
ARCHIVE/data/KEY, which the pickle names through "persistent ids". We
unpickle with an allow-list: only the few globals a state dict needs
(OrderedDict, the tensor rebuild functions, storage types) can be built, so
a malicious file cannot run code; anything else is a clear error.

    load_state_dict(path) -> {name: np.ndarray}
    state_dict_keys(path) -> [name, ...], reading the pickle alone (no tensor data)
"""
import collections
import pickle
import zipfile

import numpy as np

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bf16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class StorageType:
    def __init__(self, name):
        self.name = name


def bf16_to_f32(raw):
    bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32)


def rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, made contiguous."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    span = 1 + sum((s - 1) * st for s, st in zip(size, stride))
    if offset < 0 or offset + span > storage.size:
        raise ValueError("tensor view reaches past its storage")
    base = storage[offset:offset + span]
    view = np.lib.stride_tricks.as_strided(base, shape=size, strides=[st * base.itemsize for st in stride])
    return np.ascontiguousarray(view)


def rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
}


class StateDictUnpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix, path):
        super().__init__(f)
        self.zf, self.prefix, self.path = zf, prefix, path

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(
            f"{self.path}: holds {module}.{name}, which is not part of a plain state dict "
            "(dc reads state dicts of tensors; save model.state_dict())")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel)
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"{self.path}: unexpected persistent id {pid!r}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        dtype = STORAGE_DTYPES[stype.name]
        raw = self.zf.read(f"{self.prefix}/data/{key}")
        arr = bf16_to_f32(raw) if dtype == "bf16" else np.frombuffer(raw, dtype=dtype)
        if arr.size < numel:
            raise ValueError(f"{self.path}: storage {key} holds {arr.size} values, expected {numel}")
        return arr


class KeysUnpickler(StateDictUnpickler):
    """The same allow-list, but no storage is read and every tensor is None:
    for a file's names alone (what the converter looks at to tell a family)."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda *unused: None
        return super().find_class(module, name)

    def persistent_load(self, pid):
        return None


def unpickle(path, unpickler):
    """The object a torch.save() file holds, built by unpickler (a class
    above); the state dict itself when it sits under 'ema', 'model' or
    'state_dict', as training checkpoints keep it."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise SystemExit(f"convert: {path}: not a zip-format torch file (saved by PyTorch < 1.6?); "
                         "re-save it with a current torch.save") from None
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise SystemExit(f"convert: {path}: expected one data.pkl in the archive, found {len(pkls)}")
        prefix = pkls[0][:-len("/data.pkl")]
        with zf.open(pkls[0]) as f:
            try:
                obj = unpickler(f, zf, prefix, path).load()
            except (pickle.UnpicklingError, ValueError, KeyError, EOFError) as e:
                raise SystemExit(f"convert: {path}: {e}") from None
    for key in ("ema", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def load_state_dict(path):
    """{name: np.ndarray} from a torch.save()d state dict (or a dict holding one
    under 'model', 'ema' or 'state_dict', as training checkpoints do)."""
    obj = unpickle(path, StateDictUnpickler)
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise SystemExit(f"convert: {path}: not a state dict of tensors")
    return dict(obj)


def state_dict_keys(path):
    """The tensor names of a torch.save()d state dict, without reading its tensors."""
    obj = unpickle(path, KeysUnpickler)
    if not isinstance(obj, dict):
        raise SystemExit(f"convert: {path}: not a state dict of tensors")
    return [k for k in obj if isinstance(k, str)]
