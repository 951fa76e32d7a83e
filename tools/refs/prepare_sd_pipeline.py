#!/usr/bin/env python3
"""tools/refs/prepare_sd_pipeline.py - a tiny Stable Diffusion pipeline folder,
laid out as diffusers saves one (model_index.json, tokenizer/,
text_encoder/, vae/, unet/, scheduler/), converted with
`convert.py` (the family told from model_index.json), so the tests run the whole text-conditional
path (prompts -> tokens -> text encoder -> UNet, image -> VAE) through the
real converter. Random weights: it checks the plumbing, not accuracy.

Parts: the tiny test tokenizer (tools/refs/prepare_tokenizer.py), a random CLIP
text encoder sized to it (numpy), the VAE of tests/data/vae/new_names, the
UNet of the golden fixture unet_sd1 (cross-attention width 32).

usage: prepare_sd_pipeline.py TMPDIR [FIXTURES]   (after the other prepare_*.py)
"""
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
from prepare_tests import CONVERT, folders, run  # noqa: E402
from safetensors_np import write_safetensors  # noqa: E402


def clip_folder(out, vocab, hidden=32, layers=2, heads=2, inter=64, seed=5):
    rng = np.random.default_rng(seed)
    t = {}

    def lin(name, o, i):
        t[name + ".weight"] = (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
        t[name + ".bias"] = (rng.standard_normal(o) * 0.05).astype(np.float32)

    def norm(name):
        t[name + ".weight"] = (1 + rng.standard_normal(hidden) * 0.1).astype(np.float32)
        t[name + ".bias"] = (rng.standard_normal(hidden) * 0.1).astype(np.float32)

    p = "text_model."
    t[p + "embeddings.token_embedding.weight"] = (rng.standard_normal((vocab, hidden)) * 0.5).astype(np.float32)
    t[p + "embeddings.position_embedding.weight"] = (rng.standard_normal((77, hidden)) * 0.5).astype(np.float32)
    for i in range(layers):
        q = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(q + "self_attn." + proj, hidden, hidden)
        norm(q + "layer_norm1")
        norm(q + "layer_norm2")
        lin(q + "mlp.fc1", inter, hidden)
        lin(q + "mlp.fc2", hidden, inter)
    norm(p + "final_layer_norm")
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"architectures": ["CLIPTextModel"], "hidden_size": hidden, "intermediate_size": inter,
                   "num_attention_heads": heads, "num_hidden_layers": layers, "max_position_embeddings": 77,
                   "vocab_size": vocab, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}, f)


def main():
    tmp, fixtures = folders(__doc__)
    unet = os.path.join(fixtures, "unet_sd1")
    tok = os.path.join(tmp, "tokenizer_tiny")
    if not os.path.isdir(unet) or not os.path.isdir(tok):
        return  # the tests skip
    for pred in ("epsilon", "v_prediction"):
        pipe = os.path.join(tmp, f"sd_tiny_{pred}")
        shutil.rmtree(pipe, ignore_errors=True)
        shutil.copytree(tok, os.path.join(pipe, "tokenizer"))
        with open(os.path.join(tok, "vocab.json")) as f:
            vocab = len(json.load(f))
        clip_folder(os.path.join(pipe, "text_encoder"), vocab)
        shutil.copytree(os.path.join(ROOT, "tests", "data", "vae", "new_names"), os.path.join(pipe, "vae"),
                        ignore=shutil.ignore_patterns("*.npy", "case.json"))
        os.makedirs(os.path.join(pipe, "unet"))
        for name in ("config.json", "diffusion_pytorch_model.safetensors"):
            shutil.copy(os.path.join(unet, name), os.path.join(pipe, "unet", name))
        os.makedirs(os.path.join(pipe, "scheduler"))
        with open(os.path.join(pipe, "scheduler", "scheduler_config.json"), "w") as f:
            json.dump({"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                       "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": pred}, f)
        with open(os.path.join(pipe, "model_index.json"), "w") as f:
            json.dump({"_class_name": "StableDiffusionPipeline"}, f)
        # no --family: the pipeline's model_index.json tells it, as for users' downloads
        run(CONVERT, pipe, "-o", os.path.join(tmp, f"sd_tiny_{pred}.dcw"))


if __name__ == "__main__":
    main()
