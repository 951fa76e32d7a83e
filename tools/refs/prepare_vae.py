#!/usr/bin/env python3
"""tools/refs/prepare_vae.py - writes the VAE model files tests/test_vae.c reads,
through the real converter (tools/convert/convert.py, as a user runs it):

  vae_new_names_{f32,f16,q8}.dcw   tests/data/vae/new_names (diffusers >= 0.15 names)
  vae_old_names_f32.dcw            tests/data/vae/old_names (query/key/value/proj_attn)
  vae_compvis_names_f32.dcw        tests/data/vae/compvis_names/vae.safetensors (CompVis
                                   names, no config.json beside it) with --config-vae
                                   new_names/config.json: the same weights as new_names

The references themselves come from tools/refs/make_vae_refs.py (torch).
usage: prepare_vae.py TMPDIR [FIXTURES]
"""
import os

from prepare_tests import CONVERT, ROOT, folders, run

DATA = os.path.join(ROOT, "tests", "data", "vae")


def convert(src, out, *extra):
    run(CONVERT, src, "--family", "vae", "-o", out, *extra)


def main():
    tmp, _ = folders(__doc__)
    for dt in ("f32", "f16", "q8"):
        convert(os.path.join(DATA, "new_names"), os.path.join(tmp, f"vae_new_names_{dt}.dcw"), "--dtype", dt)
    convert(os.path.join(DATA, "old_names"), os.path.join(tmp, "vae_old_names_f32.dcw"))
    convert(os.path.join(DATA, "compvis_names", "vae.safetensors"), os.path.join(tmp, "vae_compvis_names_f32.dcw"),
            "--config-vae", os.path.join(DATA, "new_names", "config.json"))


if __name__ == "__main__":
    main()
