#!/usr/bin/env python3
"""tools/train/train_fmnist_sd.py - trains dc's shipped text-conditional model: a
small latent diffusion model in Stable Diffusion's architecture, from
scratch, on Fashion-MNIST captions (training split only), with Debian's
python3-torch on the CPU. Seeded.

    train_fmnist_sd.py OUTDIR --vae VAE_FOLDER [--minutes M] [--threads N]

The pieces are Stable Diffusion's, small:
  - tokenizer: byte-level BPE in CLIP's format (vocab.json, merges.txt,
    '</w>' word ends, <|startoftext|>/<|endoftext|>), its merges learnt here
    from the captions by train_bpe() below;
  - text encoder: transformers' CLIPTextModel layout (pre-LN, causal mask,
    quick_gelu), the functional model of tools/refs/make_clip_refs.py;
  - UNet2DConditionModel with cross-attention (tools/refs/make_unet_refs.py's
    module, whose state-dict names are diffusers');
  - the AutoencoderKL of tools/train/train_fmnist.py (the VAE the shipped DiT
    also uses), frozen; latents = VAE mean x scaling_factor as dc computes;
  - SD's DDPM schedule (scaled_linear 0.00085..0.012, 1000 steps, epsilon).
Text encoder and UNet are trained together on the denoising loss (SD froze a
pretrained CLIP; there is none here). A caption is one of TEMPLATES filled
with the class name; 10% of captions are empty, as SD's training drops text.

Output is a diffusers pipeline folder (model_index.json, tokenizer/,
text_encoder/, unet/, vae/, scheduler/), which `make ship` converts with
tools/convert/convert.py --family sd, the path users' downloads take.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tools", "convert"), os.path.join(ROOT, "tools", "refs")]
import convert_tokenizer  # noqa: E402
import make_unet_refs  # noqa: E402
from make_clip_refs import clip_text_forward, make_state  # noqa: E402
from prepare_tokenizer import merge_pair  # noqa: E402
from safetensors_np import write_safetensors  # noqa: E402
from train_fmnist import CLASSES, ema_update, load_vae, train_images  # noqa: E402

# the first is the one dc classifies with (stored in the model as classes.template)
TEMPLATES = ["a photo of a {}.", "a {}.", "a picture of a {}.", "a black and white photo of a {}.",
             "a low resolution photo of a {}.", "a photo of the {}.", "a small photo of a {}.",
             "a grey photo of a {}.", "{}", "an image of a {}."]
MAX_LENGTH = 16     # ids per prompt: the longest caption is 12 tokens
CLIP_CFG = dict(hidden_size=128, intermediate_size=512, num_attention_heads=4, num_hidden_layers=3,
                max_position_embeddings=MAX_LENGTH, hidden_act="quick_gelu", layer_norm_eps=1e-5)
UNET_CFG = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.25.1", "sample_size": 8,
            "in_channels": 4, "out_channels": 4, "block_out_channels": [64, 128], "layers_per_block": 1,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            "mid_block_type": "UNetMidBlock2DCrossAttn", "attention_head_dim": [2, 4],
            "cross_attention_dim": 128, "norm_num_groups": 16, "norm_eps": 1e-5, "flip_sin_to_cos": True,
            "freq_shift": 0, "act_fn": "silu", "center_input_sample": False, "downsample_padding": 1,
            "mid_block_scale_factor": 1.0, "use_linear_projection": False, "upcast_attention": False}
SCHEDULER = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.25.1", "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "epsilon"}
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenisation pattern, for the lower-case ASCII captions used here
WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


# ---------------------------------------------------------------- tokenizer

def words_of(text):
    """CLIP's cleanup and pre-tokenisation, each word as its byte-level characters with '</w>' last."""
    chars = convert_tokenizer.bytes_to_unicode()
    out = []
    for w in WORDS.findall(re.sub(r"\s+", " ", text).strip().lower()):
        sym = [chars[b] for b in w.encode("utf-8")]
        out.append(tuple(sym[:-1] + [sym[-1] + "</w>"]))
    return out


def train_bpe(texts):
    """Merges, most frequent adjacent pair first (ties by the pair's text, so the result is
    deterministic), until every word is one token. A merge whose joined token already exists
    is skipped: CLIP's vocabulary lists each joined token once."""
    freq = {}
    for t in texts:
        for w in words_of(t):
            freq[w] = freq.get(w, 0) + 1
    chars = list(convert_tokenizer.bytes_to_unicode().values())
    have = set(chars) | {c + "</w>" for c in chars}
    merges, banned = [], set()
    while True:
        pairs = {}
        for w, n in freq.items():
            for p in zip(w, w[1:]):
                if p not in banned:
                    pairs[p] = pairs.get(p, 0) + n
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        joined = best[0] + best[1]
        if joined in have:
            banned.add(best)
            continue
        have.add(joined)
        merges.append(best)
        new = {}
        for w, n in freq.items():
            w = tuple(merge_pair(w, best))
            new[w] = new.get(w, 0) + n
        freq = new


def write_tokenizer(folder, merges):
    chars = list(convert_tokenizer.bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges] + [BOS, EOS]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, model_max_length=MAX_LENGTH, do_lower_case=True,
                       tokenizer_class="CLIPTokenizer"), f, indent=2)
    return vocab


def encode(text, index, rank):
    """CLIP's BPE (lowest-rank pair first, all its occurrences at once), start and end
    tokens, padded with the end token to MAX_LENGTH. index: token -> id, rank: merge -> rank."""
    ids = [index[BOS]]
    for w in words_of(text):
        w = list(w)
        while len(w) > 1:
            best = min(zip(w, w[1:]), key=lambda p: rank.get(p, len(rank)))
            if best not in rank:
                break
            w = merge_pair(w, best)
        ids += [index[t] for t in w]
    ids = ids[:MAX_LENGTH - 1] + [index[EOS]]
    return ids + [index[EOS]] * (MAX_LENGTH - len(ids))


def check_with_dc(folder, captions, ids):
    """The ids training uses must be the ones dc computes at classification time: convert the
    tokenizer folder and ask `dc tokenize` (skipped, with a note, when ./dc is not built)."""
    dc = os.path.join(ROOT, "dc")
    if not os.path.exists(dc):
        print("note: ./dc not built, tokenizer not cross-checked against dc")
        return
    dcw = os.path.join(folder, "..", "tokenizer-check.dcw")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert", "convert.py"), folder, "--family",
                    "tokenizer", "-o", dcw], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([dc, "tokenize", "-m", dcw] + captions, check=True, capture_output=True, text=True)
    os.remove(dcw)
    got = [[int(v) for v in line.split()] for line in out.stdout.strip().split("\n")]
    if got != ids:
        bad = next(i for i in range(len(ids)) if got[i] != ids[i])
        sys.exit(f"train_fmnist_sd: dc tokenizes {captions[bad]!r} as {got[bad]}, training as {ids[bad]}")
    print(f"tokenizer: dc gives the same ids for all {len(captions)} captions")


# ---------------------------------------------------------------- training

def scaled_linear_abar():
    betas = torch.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5, 1000,
                           dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def train(out, vae_dir, minutes, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    captions = [t.format(c) for c in CLASSES for t in TEMPLATES] + [""]
    merges = train_bpe(captions[:-1])
    tok_dir = os.path.join(out, "tokenizer")
    vocab = write_tokenizer(tok_dir, merges)
    index, rank = {t: i for i, t in enumerate(vocab)}, {m: i for i, m in enumerate(merges)}
    ids = [encode(c, index, rank) for c in captions]
    check_with_dc(tok_dir, captions, ids)
    print(f"tokenizer: {len(merges)} merges, {len(vocab)} tokens; '{captions[0]}' -> {ids[0]}", flush=True)
    ids = torch.tensor(ids)
    T = len(TEMPLATES)

    vae, vcfg = load_vae(vae_dir)
    x, y = train_images()
    with torch.no_grad():
        z = torch.cat([vae.encode(x[i:i + 1000])[0] for i in range(0, x.shape[0], 1000)]) * vcfg["scaling_factor"]
    print(f"latents: {tuple(z.shape)}, std {z.std().item():.3f}", flush=True)

    ccfg = dict(CLIP_CFG, vocab_size=len(vocab))
    text = {k: (v * (0.02 / 0.5) if "embedding" in k else v).requires_grad_() for k, v in make_state(ccfg, g).items()}
    unet = make_unet_refs.UNet(UNET_CFG).float()
    params = list(text.values()) + list(unet.parameters())
    print(f"parameters: text encoder {sum(v.numel() for v in text.values())}, "
          f"UNet {sum(p.numel() for p in unet.parameters())}", flush=True)
    ema_text = {k: v.detach().clone() for k, v in text.items()}
    ema_unet = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0)
    abar = scaled_linear_abar()
    t0, step, bs = time.time(), 0, 128
    while time.time() - t0 < minutes * 60:
        idx = torch.randint(0, z.shape[0], (bs,), generator=g)
        z0, yb = z[idx], y[idx]
        cap = yb * T + torch.randint(0, T, (bs,), generator=g)
        cap[torch.rand(bs, generator=g) < 0.1] = len(captions) - 1     # the empty caption
        t = torch.randint(0, 1000, (bs,), generator=g)
        eps = torch.randn(z0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        ctx = clip_text_forward(text, ccfg, ids[cap])[1]
        loss = F.mse_loss(unet(zt, t.float(), ctx), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(ema_text, text)
        ema_update(ema_unet, unet.state_dict())
        step += 1
        if step % 100 == 0:
            el = time.time() - t0
            print(f"sd step {step} ({el:.0f}s, {step * bs / el:.0f} samples/s, {step * bs / z.shape[0]:.1f} epochs): "
                  f"loss {loss.item():.4f}", flush=True)
    save(out, vae_dir, ccfg, ema_text, ema_unet)
    print(f"sd: {step} steps ({step * bs / z.shape[0]:.1f} epochs) in {time.time() - t0:.0f}s, EMA weights saved")


def save(out, vae_dir, ccfg, text, unet):
    def np32(sd):
        return {k: v.detach().float().contiguous().numpy() for k, v in sd.items()}

    te = os.path.join(out, "text_encoder")
    os.makedirs(te, exist_ok=True)
    write_safetensors(os.path.join(te, "model.safetensors"), np32(text))
    with open(os.path.join(te, "config.json"), "w") as f:
        V = ccfg["vocab_size"]      # the special tokens are the vocabulary's last two
        json.dump(dict(ccfg, architectures=["CLIPTextModel"], model_type="clip_text_model", bos_token_id=V - 2,
                       eos_token_id=V - 1, pad_token_id=V - 1, projection_dim=ccfg["hidden_size"],
                       torch_dtype="float32"), f, indent=2)
    un = os.path.join(out, "unet")
    os.makedirs(un, exist_ok=True)
    write_safetensors(os.path.join(un, "diffusion_pytorch_model.safetensors"), np32(unet))
    with open(os.path.join(un, "config.json"), "w") as f:
        json.dump(UNET_CFG, f, indent=2)
    sch = os.path.join(out, "scheduler")
    os.makedirs(sch, exist_ok=True)
    with open(os.path.join(sch, "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)
    shutil.copytree(vae_dir, os.path.join(out, "vae"), dirs_exist_ok=True)
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
                   "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
                   "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                   "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None],
                   "feature_extractor": [None, None], "requires_safety_checker": False}, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--vae", required=True, help="the trained VAE folder (tools/train/train_fmnist.py vae)")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train(a.out, a.vae, a.minutes, a.seed)


if __name__ == "__main__":
    main()
