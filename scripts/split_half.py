#!/usr/bin/env python3
"""Split-half check of the clustering defaults: do the knobs generalise?

Splits a labelled dump into two halves by a hash of the gold label (whole events go to one
half), tunes the given knobs on one half with `perps-news sweep`, scores the best setting on
the other half, and the other way round. A small gap between tuned-on and held-out F1 means
the knob values are not memorising the dev set.

    scripts/split_half.py ../shared/data/news-events-dev.jsonl \
        --set cluster.threshold=0.1,0.15,0.2,0.25 [--set KEY=V1,V2 ...] [--bin PATH]

Stdlib only; needs a built binary (default target/release/perps-news).
"""
import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile


def sweep(binary, gold, sets):
    cmd = [binary, "sweep", "--json", "--gold", gold]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gold")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "perps-news"))
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.gold, encoding="utf-8") if l.strip()]
    half = lambda r: int(hashlib.sha256(r["label"].encode()).hexdigest(), 16) % 2
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for h in (0, 1):
            p = os.path.join(d, f"half{h}.jsonl")
            with open(p, "w", encoding="utf-8") as f:
                for r in rows:
                    if half(r) == h:
                        f.write(json.dumps(r) + "\n")
            paths.append(p)
        grids = [sweep(args.bin, p, args.sets) for p in paths]
        default = [sweep(args.bin, p, [])[0]["scores"]["bcubed_f1"] for p in paths]
        print(f"{'tuned on':<9} {'best knobs':<60} {'tuned F1':>9} {'held-out F1':>12} {'defaults there':>15}")
        for a, b in ((0, 1), (1, 0)):
            best = max(grids[a], key=lambda r: r["scores"]["bcubed_f1"])
            knobs = best["knobs"]
            held = next(r for r in grids[b] if r["knobs"] == knobs)["scores"]["bcubed_f1"]
            print(f"half {a:<4} {' '.join(knobs) or '(defaults)':<60} {best['scores']['bcubed_f1']:>9.4f} {held:>12.4f} {default[b]:>15.4f}")


if __name__ == "__main__":
    sys.exit(main())
