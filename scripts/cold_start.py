#!/usr/bin/env python3
"""Cold-start check: cut a labelled dump into chunks of N articles in (time, id) order,
cluster each chunk alone on a fresh state, and score all chunks' assignments together
against the gold labels (B-cubed; a story never spans two chunks).

    scripts/cold_start.py ../shared/data/news-events-dev.jsonl [--chunk 20] \
        [--pipeline FILE] [--bin PATH]

Stdlib only; needs a built binary (default target/release/perps-news).
"""
import argparse
import json
import os
import subprocess
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gold")
    ap.add_argument("--chunk", type=int, default=20)
    ap.add_argument("--pipeline")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "perps-news"))
    args = ap.parse_args()
    lines = [l for l in open(args.gold, encoding="utf-8") if l.strip()]
    key = lambda l: (json.loads(l)["published_at"], json.loads(l)["id"])
    lines.sort(key=key)
    out = []
    with tempfile.TemporaryDirectory() as d:
        dump, asg, all_asg = (os.path.join(d, n) for n in ("c.jsonl", "a.jsonl", "all.jsonl"))
        for k in range(0, len(lines), args.chunk):
            with open(dump, "w", encoding="utf-8") as f:
                f.write("".join(lines[k : k + args.chunk]))
            cmd = [args.bin, "run", "-q", dump, "--assignments", asg]
            if args.pipeline:
                cmd += ["--pipeline", args.pipeline]
            subprocess.run(cmd, check=True, capture_output=True)
            for l in open(asg, encoding="utf-8"):
                r = json.loads(l)
                r["cluster"] = f"{k}:{r['cluster']}"
                out.append(json.dumps(r))
        with open(all_asg, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        e = subprocess.run([args.bin, "eval", "--json", "--gold", args.gold, "--assignments", all_asg],
                           check=True, capture_output=True, text=True).stdout
    s = json.loads(e)
    print(f"chunks of {args.chunk}: B-cubed P {s['bcubed_p']:.3f} R {s['bcubed_r']:.3f} F1 {s['bcubed_f1']:.3f}")


if __name__ == "__main__":
    main()
