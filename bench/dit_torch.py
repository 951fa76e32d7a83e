#!/usr/bin/env python3
"""bench/dit_torch.py - the same DiT forward in Debian's PyTorch (float32,
no autograd), on the same random weights, for bench/dit_bench.sh.

usage: dit_torch.py CHECKPOINT.safetensors BATCH REPS THREADS"""
import os
import resource
import sys
import time

import torch

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path[:0] = [os.path.join(TOOLS, "refs"), os.path.join(TOOLS, "convert")]
from make_dit_refs import dit_forward  # noqa: E402  (the functional DiT used for the test references)
from safetensors_np import load_tensor, open_safetensors  # noqa: E402


def main():
    path, n, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    sd = {k: torch.from_numpy(load_tensor(v).copy()) for k, v in open_safetensors(path).items()}
    D = sd["x_embedder.proj.weight"].shape[0]
    T = sd["pos_embed"].shape[1]
    p = sd["x_embedder.proj.weight"].shape[2]
    S = int(round(T ** 0.5)) * p
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    cfg = dict(input_size=S, patch_size=p, in_channels=4, hidden_size=D, depth=depth, num_heads=16,
               mlp_ratio=4.0, num_classes=1000, learn_sigma=True)
    x = torch.randn(n, 4, S, S)
    t = torch.tensor([float(37 * i % 1000) for i in range(n)])
    y = torch.tensor([i % 1000 for i in range(n)])
    best = 1e30
    with torch.no_grad():
        for k in range(reps + 1):
            t0 = time.perf_counter()
            dit_forward(sd, cfg, x, t, y)
            dt = time.perf_counter() - t0
            if k > 0:
                best = min(best, dt)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch  {os.path.basename(path):<28} batch {n:2d}  {best:8.3f} s/forward  {best / n:7.3f} s/sample"
          f"  (torch {torch.__version__}, {threads} threads)  peak RSS {rss:6.0f} MB")


if __name__ == "__main__":
    main()
