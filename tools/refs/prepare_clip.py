#!/usr/bin/env python3
"""tools/refs/prepare_clip.py - the model files tests/test_clip.c reads, made
through the real converter (tools/convert/convert.py --family clip) into TMPDIR:

  clip_fixture_{f32,f16,q8}.dcw   tests/fixtures/clip_text_quickgelu
  clip_<case>.dcw                 tests/data/clip/<case> (tools/refs/make_clip_refs.py), f32
  clip_missing.dcw                a case with one tensor removed from the source
                                  (the converter lets it through; the engine names it)
  clip_extra_layer.dcw            a file whose clip.num_layers is one short of its
                                  tensors (written directly: the converter refuses it)
  clip_unknown_tensor.txt         the converter's message for a source holding a
                                  tensor CLIP does not have (it must refuse, naming it)
  clip_sd1_single.dcw             odd_heads_f16 laid out as in an SD 1.x single-file
                                  checkpoint (cond_stage_model.transformer.*, beside
                                  UNet and VAE tensors), config.json beside it
  clip_sd2_single.dcw             gelu_pad0 laid out as in an SD 2.x single-file
                                  checkpoint (OpenCLIP names, fused in_proj, one more
                                  block that SD 2.x skips), config given by --config-text

Called by tools/refs/prepare_tests.py. usage: prepare_clip.py TMPDIR [FIXTURES]
"""
import json
import os
import shutil
import tempfile

import numpy as np

from prepare_tests import ROOT, convert_fixture_and_cases, convert_in_process, folders  # and tools/convert on the path
import convert_clip  # noqa: E402
from dcw import write_dcw  # noqa: E402
from safetensors_np import open_safetensors, write_safetensors  # noqa: E402


def convert_text(src, out, *options):
    convert_in_process("clip", src, out, *options)


def modified_copy(case_dir, dst, drop=(), add=None):
    """A copy of a case's source folder with tensors dropped or added."""
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(case_dir, "config.json"), dst)
    tensors = {k: np.array(v) for k, v in open_safetensors(os.path.join(case_dir, "model.safetensors")).items()
               if k not in drop}
    tensors.update(add or {})
    write_safetensors(os.path.join(dst, "model.safetensors"), tensors)


def main():
    tmp, fixtures = folders(__doc__)
    convert_fixture_and_cases("clip", os.path.join(fixtures, "clip_text_quickgelu"), tmp)

    data = os.path.join(ROOT, "tests", "data", "clip")
    with tempfile.TemporaryDirectory() as work:
        # a source without one layer's fc2 bias: the engine must say which
        src = os.path.join(work, "missing")
        modified_copy(os.path.join(data, "one_layer"), src, drop={"text_model.encoder.layers.0.mlp.fc2.bias"})
        convert_text(src, os.path.join(tmp, "clip_missing.dcw"))

        # a source with a tensor CLIP's text model does not have
        src = os.path.join(work, "unknown")
        extra = "text_model.encoder.layers.0.self_attn.rotary.weight"
        modified_copy(os.path.join(data, "one_layer"), src, add={extra: np.zeros((2, 2), np.float32)})
        try:
            convert_text(src, os.path.join(work, "unknown.dcw"))
            msg = "the converter accepted it"
        except SystemExit as e:
            msg = str(e)
        with open(os.path.join(tmp, "clip_unknown_tensor.txt"), "w") as f:
            f.write(msg + "\n")

        # SD 1.x single file: the transformers names behind cond_stage_model.transformer.
        case = os.path.join(data, "odd_heads_f16")
        src = os.path.join(work, "sd1")
        os.makedirs(src)
        shutil.copy(os.path.join(case, "config.json"), src)
        hf = {k: np.array(v) for k, v in open_safetensors(os.path.join(case, "model.safetensors")).items()}
        ckpt = {"cond_stage_model.transformer." + k: v for k, v in hf.items()}
        ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(16)[None]
        ckpt["model.diffusion_model.out.2.weight"] = np.zeros((4, 8, 3, 3), np.float16)  # other components
        ckpt["first_stage_model.quant_conv.bias"] = np.zeros(8, np.float16)
        write_safetensors(os.path.join(src, "v1-test.safetensors"), ckpt)
        convert_text(os.path.join(src, "v1-test.safetensors"), os.path.join(tmp, "clip_sd1_single.dcw"))

        # SD 2.x single file: OpenCLIP names, q|k|v fused, an extra last block
        case = os.path.join(data, "gelu_pad0")
        with open(os.path.join(case, "config.json")) as f:
            cfg = json.load(f)
        hf = {k: np.array(v) for k, v in open_safetensors(os.path.join(case, "model.safetensors")).items()}
        D, n = cfg["hidden_size"], cfg["num_hidden_layers"]
        m, t = "cond_stage_model.model.", "text_model."
        ckpt = {m + "token_embedding.weight": hf[t + "embeddings.token_embedding.weight"],
                m + "positional_embedding": hf[t + "embeddings.position_embedding.weight"],
                m + "ln_final.weight": hf[t + "final_layer_norm.weight"],
                m + "ln_final.bias": hf[t + "final_layer_norm.bias"],
                m + "text_projection": np.ones((D, 8), np.float32),
                m + "logit_scale": np.array(4.6, np.float32),
                "model.diffusion_model.input_blocks.0.0.bias": np.zeros(8, np.float32)}
        rng = np.random.default_rng(0)
        for i in range(n + 1):
            b, l = f"{m}transformer.resblocks.{i}.", f"{t}encoder.layers.{i}."
            if i == n:   # a block SD 2.x does not run: garbage that must not reach the output
                hf.update({l + k: rng.standard_normal(hf[f"{t}encoder.layers.0." + k].shape).astype(np.float32) * 9
                           for k in convert_clip.LAYER_TENSORS})
            for kind in ("weight", "bias"):
                ckpt[b + "attn.in_proj_" + kind] = np.concatenate(
                    [hf[l + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
                for oc, name in convert_clip.OPENCLIP_LAYER.items():
                    ckpt[b + oc + "." + kind] = hf[l + name + "." + kind]
        src = os.path.join(work, "sd2")
        os.makedirs(src)
        write_safetensors(os.path.join(src, "v2-test.safetensors"), ckpt)
        cfg_path = os.path.join(work, "sd2_text_config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        convert_text(os.path.join(src, "v2-test.safetensors"), os.path.join(tmp, "clip_sd2_single.dcw"),
                     "--config-text", cfg_path)

    # metadata one layer short of the tensors (a hand-made or damaged file)
    case = os.path.join(data, "gelu_pad0")
    with open(os.path.join(case, "config.json")) as f:
        cfg = json.load(f)
    meta, named = convert_clip.clip_text(case)
    meta["clip.num_layers"] = cfg["num_hidden_layers"] - 1
    meta["dc.family"] = "clip"
    write_dcw(os.path.join(tmp, "clip_extra_layer.dcw"), meta,
              [(k, v, "f32") for k, v in named], source=meta.pop("dc.source"))


if __name__ == "__main__":
    main()
