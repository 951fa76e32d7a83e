#!/usr/bin/env python3
"""bench/compare_results.py - two `dc eval --results` files of the same
images (e.g. --compute f32 and --compute int8, same seed and rule), compared
on the images both hold: top-1 of each, the images whose decision (top
class) differs, and the evaluations per image.

usage: compare_results.py A.jsonl B.jsonl
Standard library only."""
import json
import sys


def rows(path):
    out, header = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut by a stopped run
            if "dc_eval" in r:
                header = r
            elif "index" in r:
                out[r["index"]] = r
    return header, out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    (ha, a), (hb, b) = rows(sys.argv[1]), rows(sys.argv[2])
    both = sorted(set(a) & set(b))
    if not both:
        sys.exit("no image in both files")
    n = len(both)
    top_a = sum(a[i]["top"][0] == a[i]["label"] for i in both) / n
    top_b = sum(b[i]["top"][0] == b[i]["label"] for i in both) / n
    changed = [i for i in both if a[i]["top"][0] != b[i]["top"][0]]
    ev_a = sum(a[i]["evals"] for i in both) / n
    ev_b = sum(b[i]["evals"] for i in both) / n
    name = lambda h, p: f"{p} ({h.get('compute', '?')}, {h.get('stop', '?')})"
    print(f"{n} images in both: {name(ha, sys.argv[1])} and {name(hb, sys.argv[2])}")
    print(f"top-1: {top_a:.4f} and {top_b:.4f} (difference {100 * (top_b - top_a):+.2f} points)")
    print(f"decisions that differ: {len(changed)} of {n} ({100 * len(changed) / n:.2f}%)"
          + (f": images {changed[:20]}" if changed else ""))
    print(f"evaluations per image: {ev_a:.1f} and {ev_b:.1f}")


main()
