#!/usr/bin/env python3
"""bench/result_key.py - what two dc binaries must agree on, one line per
JSON object read from stdin: the fields every dc version writes (image or
index, prediction or label, each listed class with its error and scores, the
evaluation count), in a fixed order. Seconds, and fields a newer version
adds (kept, vs_best, compute, notes), are left out, so binaries of different
output versions compare by what they decided and computed."""
import json
import sys

KEEP = ("image", "index", "label", "prediction", "pred", "evals", "n_evals", "timesteps", "stop")
CLASS_KEEP = ("class", "error", "scored")

for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    row = json.loads(line)
    out = [(k, row[k]) for k in KEEP if k in row]
    for name in ("top", "errors", "mean_error", "scored", "ranking"):
        v = row.get(name)
        if isinstance(v, list) and v and isinstance(v[0], dict):
            v = [[(k, c[k]) for k in CLASS_KEEP if k in c] for c in v]
        if v is not None:
            out.append((name, v))
    print(json.dumps(out))
