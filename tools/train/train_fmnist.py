#!/usr/bin/env python3
"""tools/train/train_fmnist.py - trains the small models dc ships, on Fashion-MNIST
(Debian's dataset-fashion-mnist; training split only, the test split is
never read here), with Debian's python3-torch on the CPU. Seeded.

    train_fmnist.py vae  OUTDIR [--minutes M]   AutoencoderKL (diffusers layout)
    train_fmnist.py dit  OUTDIR [--minutes M]   class-conditional DiT on the VAE's latents

Each model is saved as users download such models: the VAE as a diffusers
folder (config.json + diffusion_pytorch_model.safetensors, encoder and
decoder), the DiT as a plain state dict (DiT-fmnist.pt, torch.save) with
config.json of its constructor arguments. data/models/*.dcw are made from
these by tools/convert/convert.py (make train), so the shipped files go through the
real converter.

Images: 28x28 grey, resized to 32x32 with Pillow's BICUBIC, replicated to
RGB, scaled to [-1, 1]: exactly what dc's preprocessing (ADM's
center_crop_arr, which dc reproduces bit for bit) gives for the 28x28 image,
so a model sees the same pixels in training and in `dc classify`.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "tools", "convert"), os.path.join(ROOT, "tools", "refs")]
from make_dit_refs import dit_forward  # noqa: E402  (the functional DiT of the test references)
from make_vae_refs import ResnetBlock2D, UNetMidBlock2D, VaeEncoder, diffusers_config  # noqa: E402
from safetensors_np import write_safetensors  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]

VAE_CFG = dict(in_channels=3, latent_channels=4, block_out_channels=[32, 64, 64], layers_per_block=1,
               norm_num_groups=16, sample_size=32, scaling_factor=1.0)
DIT_CFG = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=192, depth=6, num_heads=6,
               mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=10, learn_sigma=False)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def preprocess(images, size=32):
    """[N, 28, 28] uint8 -> [N, 3, size, size] float in [-1, 1], as dc's ADM preprocessing
    does it: BICUBIC to size (no BOX halving below 2x), centre crop (nothing to crop)."""
    from PIL import Image
    out = np.empty((images.shape[0], size, size), np.float32)
    for i, im in enumerate(images):
        out[i] = np.asarray(Image.fromarray(im).convert("RGB").resize((size, size), Image.BICUBIC))[:, :, 0]
    x = torch.from_numpy(out / 127.5 - 1.0)  # (v/255 - 0.5)/0.5
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def train_images():
    x = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    return preprocess(x), torch.from_numpy(y)


# ---------------------------------------------------------------- VAE decoder (diffusers layout)

class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin, cout, layers, groups, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, L = list(reversed(cfg["block_out_channels"])), cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[0], 3, padding=1)
        self.mid_block = UNetMidBlock2D(ch[0], g)
        self.up_blocks = nn.ModuleList([
            UpDecoderBlock2D(ch[max(i - 1, 0)], ch[i], L + 1, g, i < len(ch) - 1) for i in range(len(ch))])
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], cfg["in_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        enc = VaeEncoder(cfg)
        self.encoder, self.quant_conv = enc.encoder, enc.quant_conv
        self.post_quant_conv = nn.Conv2d(cfg["latent_channels"], cfg["latent_channels"], 1)
        self.decoder = Decoder(cfg)

    def encode(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def save_diffusers(model, cfg, out):
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"),
                      {k: v.detach().float().numpy() for k, v in model.state_dict().items()})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(diffusers_config(cfg), f, indent=2)


def train_vae(out, minutes, seed, data=train_images, steps=None):
    """data() gives the training images [N, 3, 32, 32] in [-1, 1] and their labels; steps: stop after this
    many steps instead of after minutes."""
    torch.manual_seed(seed)
    x, _ = data()
    model = AutoencoderKL(VAE_CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    t0, step, bs = time.time(), 0, 64
    g = torch.Generator().manual_seed(seed)
    while (step < steps) if steps is not None else (time.time() - t0 < minutes * 60):
        idx = torch.randint(0, x.shape[0], (bs,), generator=g)
        xb = x[idx]
        mean, logvar = model.encode(xb)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g)
        rec = model.decode(z)
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        loss = F.mse_loss(rec, xb) + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"vae step {step} ({time.time() - t0:.0f}s): mse {F.mse_loss(rec, xb).item():.4f} kl {kl.item():.3f}",
                  flush=True)
    el = time.time() - t0
    # scaling factor as SD's: latents divided by their std have unit variance
    with torch.no_grad():
        means = torch.cat([model.encode(x[i:i + 500])[0] for i in range(0, 10000, 500)])
    cfg = dict(VAE_CFG, scaling_factor=float(1.0 / means.std()))
    print(f"vae: {step} steps ({step * bs / el:.0f} samples/s), latent std {means.std().item():.4f} "
          f"-> scaling_factor {cfg['scaling_factor']:.5f}")
    save_diffusers(model, cfg, out)


# ---------------------------------------------------------------- DiT

def load_vae(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    from safetensors_np import load_tensor, open_safetensors
    model = AutoencoderKL(cfg)
    st = open_safetensors(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(np.array(load_tensor(v))) for k, v in st.items()})
    return model.eval(), cfg


def dit_params(cfg, g):
    from make_dit_refs import make_state
    sd = make_state(cfg, g)
    D = cfg["hidden_size"]
    # DiT's initialisation where it matters: adaLN-Zero blocks and the final layer start at zero
    for k in sd:
        if "adaLN_modulation" in k or k.startswith("final_layer.linear"):
            sd[k] = torch.zeros_like(sd[k])
    # the fixed 2-D sin-cos position table, as DiT builds it
    grid = int(math.isqrt(sd["pos_embed"].shape[1]))
    sd["pos_embed"] = torch.from_numpy(sincos_2d(D, grid)).float()[None]
    return {k: v.clone().requires_grad_(k != "pos_embed") for k, v in sd.items()}


def sincos_1d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid):
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([sincos_1d(dim // 2, gh), sincos_1d(dim // 2, gw)], axis=1)


def ema_update(ema, current, decay=0.999):
    """ema[k] = decay * ema[k] + (1 - decay) * current[k] for every k: the weights that are saved."""
    with torch.no_grad():
        for k, v in current.items():
            ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)


def class_signal(sd, cfg, z, y, abar, g, n=256):
    """The denoising loss of the current weights on n fixed latents with their true labels and with
    the labels shuffled: a classifier built on the model needs the first clearly below the second."""
    n = min(n, z.shape[0])
    t = torch.randint(100, 900, (n,), generator=g)
    eps = torch.randn(z[:n].shape, generator=g)
    a = abar[t].view(-1, 1, 1, 1)
    zt = a.sqrt() * z[:n] + (1 - a).sqrt() * eps
    with torch.no_grad():
        true = F.mse_loss(dit_forward(sd, cfg, zt, t.float(), y[:n]), eps).item()
        shuffled = F.mse_loss(dit_forward(sd, cfg, zt, t.float(), y[:n][torch.randperm(n, generator=g)]), eps).item()
    return true, shuffled


def train_dit(out, vae_dir, minutes, seed, data=train_images, cfg=DIT_CFG, checkpoint="DiT-fmnist.pt",
              steps=None, lr=3e-4, class_lr=None):
    """data() as train_vae's; cfg the DiT's constructor arguments; checkpoint the state dict's file name;
    steps: stop after this many steps instead of after minutes (the same model on a busy machine);
    lr: AdamW's learning rate; class_lr: the class embedding table's, if not lr (a row learns only from
    the batches its class is in: at 1,000 classes that is one batch in eight, so it needs a larger rate)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    vae, vcfg = load_vae(vae_dir)
    x, y = data()
    with torch.no_grad():  # the latents, once: VAE mean x scaling factor, as dc computes them
        z = torch.cat([vae.encode(x[i:i + 1000])[0] for i in range(0, x.shape[0], 1000)]) * vcfg["scaling_factor"]
    print(f"dit: {z.shape[0]} latents {tuple(z.shape[1:])}, std {z.std().item():.3f}", flush=True)
    sd = dit_params(cfg, g)
    ema = {k: v.detach().clone() for k, v in sd.items()}
    table = "y_embedder.embedding_table.weight"
    params = [v for k, v in sd.items() if v.requires_grad and k != table]
    print(f"dit: {sum(p.numel() for p in params) + sd[table].numel()} trainable parameters", flush=True)
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": [sd[table]], "lr": class_lr or lr}],
                            weight_decay=0.0)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    t0, step, bs = time.time(), 0, 128

    def report_signal():
        # its own generator, so the training draws are the same with or without it
        true, shuffled = class_signal(sd, cfg, z, y, abar, torch.Generator().manual_seed(seed + 1))
        print(f"dit class signal at step {step}: loss {true:.5f} with the true labels, {shuffled:.5f} shuffled "
              f"({100 * (shuffled - true) / shuffled:.2f}% lower)", flush=True)

    while (step < steps) if steps is not None else (time.time() - t0 < minutes * 60):
        idx = torch.randint(0, z.shape[0], (bs,), generator=g)
        z0, yb = z[idx], y[idx].clone()
        yb[torch.rand(bs, generator=g) < cfg["class_dropout_prob"]] = cfg["num_classes"]  # null class
        t = torch.randint(0, 1000, (bs,), generator=g)
        eps = torch.randn(z0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(dit_forward(sd, cfg, zt, t.float(), yb), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(ema, sd)
        step += 1
        if step % 100 == 0:
            el = time.time() - t0
            print(f"dit step {step} ({el:.0f}s, {step * bs / el:.0f} samples/s, {step * bs / z.shape[0]:.1f} epochs): "
                  f"loss {loss.item():.4f}", flush=True)
        if step % 1000 == 0:
            report_signal()
    if step % 1000:  # the last step's, unless the loop just printed it
        report_signal()
    os.makedirs(out, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in ema.items()}, os.path.join(out, checkpoint))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    el = time.time() - t0
    print(f"dit: {step} steps ({step * bs / z.shape[0]:.1f} epochs, {step * bs / el:.0f} samples/s) in {el:.0f}s, "
          "EMA weights saved")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["vae", "dit"])
    p.add_argument("out")
    p.add_argument("--vae", help="dit: the trained VAE folder")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.what == "vae":
        train_vae(a.out, a.minutes, a.seed)
    else:
        if not a.vae:
            p.error("dit needs --vae FOLDER")
        train_dit(a.out, a.vae, a.minutes, a.seed)


if __name__ == "__main__":
    main()
