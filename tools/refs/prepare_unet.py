#!/usr/bin/env python3
"""tools/refs/prepare_unet.py - the model files tests/test_unet.c reads, made
through the real converter (tools/convert/convert.py --family unet) into TMPDIR:

  unet_fixture_{f32,f16,q8}.dcw  ../shared/fixtures/unet_sd1 (if present)
  unet_<case>.dcw                tests/data/unet/<case> (tools/refs/make_unet_refs.py), f32
  unet_sd2_linear_numheads.dcw   sd2_linear's weights with a config that names the
                                 heads in num_attention_heads ([1, 2, 2]) and sets
                                 attention_head_dim to a value that would be wrong
                                 (4): the output must not change
  unet_missing.dcw               sd2_linear without one tensor (written directly:
                                 the converter refuses it); the engine must name it
  unet_misshaped.dcw             sd2_linear with attn2.to_k one column short
  unet_unknown_tensor.txt        the converter's message for a source holding a
                                 tensor the UNet does not have (it must name it)
  unet_key_lists.txt             the converter's config logic against the real
                                 SD 1.5 / 2.1 key lists (tools/refs/make_unet_refs.py)

Called by tools/refs/prepare_tests.py. usage: prepare_unet.py TMPDIR [FIXTURES]
"""
import glob
import json
import os
import shutil
import tempfile

import numpy as np

from prepare_tests import ROOT, convert_in_process, folders  # also puts tools/convert on the path
import convert_unet  # noqa: E402
from dcw import write_dcw  # noqa: E402
from safetensors_np import open_safetensors, write_safetensors  # noqa: E402


def convert_unet_file(src, out, *options):
    convert_in_process("unet", src, out, *options)


def write_modified(case_dir, out, edit):
    """A .dcw of a case, written directly (no converter checks), after edit(dict of arrays)."""
    meta, items = convert_unet.unet(case_dir)
    tensors = {k: np.array(v) for k, v in items}
    edit(tensors)
    meta["dc.family"] = "unet"
    write_dcw(out, meta, [(k, v, "f32") for k, v in tensors.items()], source=case_dir)


def key_lists(fixtures, tmp):
    """Runs make_unet_refs.py's key-list check (needs torch: skipped with a note without it)."""
    try:
        import make_unet_refs
    except ImportError as e:
        lines = [f"skipped: {e}"]
    else:
        lines = make_unet_refs.check_key_lists(fixtures) or ["skipped: no key lists"]
    with open(os.path.join(tmp, "unet_key_lists.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    tmp, fixtures = folders(__doc__)
    fixture = os.path.join(fixtures, "unet_sd1")
    if os.path.isdir(fixture):
        for dt in ("f32", "f16", "q8"):
            convert_unet_file(fixture, os.path.join(tmp, f"unet_fixture_{dt}.dcw"), "--dtype", dt)
    data = os.path.join(ROOT, "tests", "data", "unet")
    for case in sorted(glob.glob(os.path.join(data, "*"))):
        convert_unet_file(case, os.path.join(tmp, f"unet_{os.path.basename(case)}.dcw"))

    sd2 = os.path.join(data, "sd2_linear")
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(sd2, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["num_attention_heads"], cfg["attention_head_dim"] = cfg["attention_head_dim"], 4
        path = os.path.join(work, "numheads.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        convert_unet_file(sd2, os.path.join(tmp, "unet_sd2_linear_numheads.dcw"), "--config-unet", path)

        # a source with a tensor the UNet does not have: the converter must name it
        src = os.path.join(work, "unknown")
        os.makedirs(src)
        shutil.copy(os.path.join(sd2, "config.json"), src)
        tensors = {k: np.array(v) for k, v in
                   open_safetensors(os.path.join(sd2, "diffusion_pytorch_model.safetensors")).items()}
        tensors["mid_block.attentions.0.transformer_blocks.0.attn1.rotary.weight"] = np.zeros((2, 2), np.float32)
        write_safetensors(os.path.join(src, "diffusion_pytorch_model.safetensors"), tensors)
        try:
            convert_unet_file(src, os.path.join(work, "unknown.dcw"))
            msg = "the converter accepted it"
        except SystemExit as e:
            msg = str(e)
        with open(os.path.join(tmp, "unet_unknown_tensor.txt"), "w", encoding="utf-8") as f:
            f.write(msg + "\n")

    missing = "unet.up_blocks.2.attentions.1.transformer_blocks.0.ff.net.2.bias"
    write_modified(sd2, os.path.join(tmp, "unet_missing.dcw"), lambda t: t.pop(missing))
    k2 = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    write_modified(sd2, os.path.join(tmp, "unet_misshaped.dcw"), lambda t: t.update({k2: t[k2][:, :-1].copy()}))
    key_lists(fixtures, tmp)


if __name__ == "__main__":
    main()
