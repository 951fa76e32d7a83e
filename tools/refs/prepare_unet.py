#!/usr/bin/env python3
"""tools/refs/prepare_unet.py - the model files tests/test_unet.c reads, made
through the real converter (tools/convert/convert.py --family unet) into TMPDIR:

  unet_fixture_{f32,f16,q8}.dcw  tests/fixtures/unet_sd1
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
                                 SD 1.5 / 2.1 key lists (tests/fixtures/key_lists)

Called by tools/refs/prepare_tests.py. usage: prepare_unet.py TMPDIR [FIXTURES]
"""
import json
import os
import shutil
import tempfile

import numpy as np

from prepare_tests import ROOT, convert_fixture_and_cases, convert_in_process, folders  # and tools/convert on the path
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


def read_key_list(fixtures, name):
    """(the key list's JSON, {real name: shape}) of tests/fixtures/key_lists/NAME.json."""
    with open(os.path.join(fixtures, "key_lists", name + ".json"), encoding="utf-8") as f:
        d = json.load(f)
    return d, {k: tuple(s) for k, s in d["keys"]}


def converter_against_key_lists(fixtures):
    """tools/convert/convert_unet.py against the real full-size SD 1.5 / 2.1
    UNet key lists: the names and shapes its config logic implies are the
    listed ones, their counts are summary.json's, and it accepts the real
    list. Shapes only (no weights, no torch). One line per model ending in
    ": ok"; SystemExit naming the first difference."""
    with open(os.path.join(fixtures, "key_lists", "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    lines = []
    for name in ("sd15_unet", "sd21_unet"):
        d, real = read_key_list(fixtures, name)
        cfg = convert_unet.normalise_config(d["config"], name)
        want = convert_unet.expected_shapes(cfg)
        if set(want) != set(real):
            raise SystemExit(f"{name}: converter names differ: extra {sorted(set(want) - set(real))[:5]}, "
                             f"missing {sorted(set(real) - set(want))[:5]}")
        bad = [k for k in real if want[k] != real[k]]
        if bad:
            raise SystemExit(f"{name}: converter shapes differ: {bad[:5]}")
        params = sum(int(np.prod(s)) for s in want.values())
        if params != summary[name]["total_parameters"] or len(want) != summary[name]["num_tensors"]:
            raise SystemExit(f"{name}: {len(want)} tensors / {params} parameters, summary.json says "
                             f"{summary[name]['num_tensors']} / {summary[name]['total_parameters']}")
        # the converter accepts the real list (shapes only: no data is read)
        fake = {k: np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), s, [0] * len(s)) for k, s in real.items()}
        _, items = convert_unet.unet_from_tensors(fake, d["config"], name)
        if [k for k, _ in items] != ["unet." + k for k in want]:
            raise SystemExit(f"{name}: the converter's output names differ from its expected list")
        line = (f"{name}: {len(real)} tensors, {params} parameters, heads {cfg['heads']}, "
                f"head dims {[c // h for c, h in zip(cfg['block_out_channels'], cfg['heads'])]}: ok")
        print(line)
        lines.append(line)
    return lines


def key_lists(fixtures, tmp):
    with open(os.path.join(tmp, "unet_key_lists.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(converter_against_key_lists(fixtures)) + "\n")


def main():
    tmp, fixtures = folders(__doc__)
    convert_fixture_and_cases("unet", os.path.join(fixtures, "unet_sd1"), tmp)
    data = os.path.join(ROOT, "tests", "data", "unet")

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
