#!/usr/bin/env python3
"""bench/sd_torch.py - the same SD UNet forward in Debian's PyTorch (float32,
no autograd), on the same weights, for bench/sd_bench.sh.

The module is tools/refs/make_unet_refs.py's UNet (diffusers' structure and
state-dict names, checked there against diffusers itself). It builds its
layers in float64 for the test references; here it is built on the meta
device, cast to float32 and only then given memory, so the 3.4 GB of SD
1.5's weights are allocated once, in float32. Its timestep embedding is
computed in float64: cast to float32 before the time MLP (a 320-wide
vector per sample; no effect on the timing).

usage: sd_torch.py PIPELINE_OR_UNET_FOLDER LATENT BATCH REPS THREADS
Prints one line like sd_bench's: seconds per eval and per sample, GFLOP/s
(the FLOPs dc's bench counts, passed with --gflop; else not printed) and
peak RSS."""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path[:0] = [os.path.join(TOOLS, "refs"), os.path.join(TOOLS, "convert")]
import make_unet_refs  # noqa: E402
from safetensors_np import read_header  # noqa: E402


def build_unet(folder):
    unet_dir = os.path.join(folder, "unet") if os.path.isdir(os.path.join(folder, "unet")) else folder
    with open(os.path.join(unet_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    make_unet_refs.DEVICE = "meta"
    try:
        model = make_unet_refs.UNet(config)
    finally:
        make_unet_refs.DEVICE = None
    model = model.float().to_empty(device="cpu")
    path = os.path.join(unet_dir, "diffusion_pytorch_model.safetensors")
    header, _, start, _ = read_header(path)
    state = model.state_dict()
    if set(state) != set(header):
        raise SystemExit(f"sd_torch: {unet_dir}: tensor names differ from the module's: "
                         f"{sorted(set(state) ^ set(header))[:5]}")
    # read with plain reads, one tensor at a time, not through a memory map:
    # mapped file pages would count in the peak RSS next to the model's own copy
    with open(path, "rb") as f, torch.no_grad():
        for name, p in state.items():
            info = header[name]
            if info["dtype"] != "F32":
                raise SystemExit(f"sd_torch: {path}: {name} is {info['dtype']}, this bench reads F32")
            f.seek(start + info["data_offsets"][0])
            a = np.fromfile(f, dtype="<f4", count=int(np.prod(info["shape"], dtype=np.int64)))
            p.copy_(torch.from_numpy(a.reshape(info["shape"])))
    return model.eval(), config


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--gflop=")]
    gflop = [float(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--gflop=")]
    if len(args) != 5:
        raise SystemExit(__doc__)
    folder, S, n, reps, threads = args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4])
    torch.set_num_threads(threads)
    model, config = build_unet(folder)
    emb = make_unet_refs.timestep_embedding
    make_unet_refs.timestep_embedding = lambda *a, **k: emb(*a, **k).float()
    g = torch.Generator().manual_seed(0)
    cross = model.cfg["cross_attention_dim"]
    x = torch.randn(n, model.cfg["in_channels"], S, S, generator=g)
    t = torch.tensor([float(37 * i % 1000) for i in range(n)])
    ctx = torch.randn(n, 77, cross, generator=g)
    best = 1e30
    with torch.no_grad():
        for k in range(reps + 1):   # the first run warms up, as in sd_bench
            t0 = time.perf_counter()
            out = model(x, t, ctx)
            dt = time.perf_counter() - t0
            if k > 0:
                best = min(best, dt)
    assert torch.isfinite(out).all(), "non-finite output"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = f"  {gflop[0] * n / best:6.1f} GFLOP/s" if gflop else ""
    name = os.path.basename(os.path.normpath(folder)) + " (torch)"
    print(f"torch  {name:<28} {S:3d}x{S:<3d} batch {n:2d}  {best:8.3f} s/eval  {best / n:7.3f} s/sample{rate}"
          f"  peak RSS {rss:6.0f} MB  (torch {torch.__version__}, {threads} threads)")


if __name__ == "__main__":
    main()
