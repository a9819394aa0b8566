#!/usr/bin/env python3
"""How the time model holds up on real feeds: the dev set as it is, and altered the ways real
feeds differ from its crawl times.

The dev set's `crawled` times bunch each event's articles into the same minutes, which
rewards a steep time penalty for no reason a live feed shares. So each setting is scored on:

  dev        the dump as it is;
  published  only the records whose date is a real publication date (`date_kind`);
  skewed     a third of the records (by a hash of the id) moved 2-5 hours later or earlier:
             publishers with wrong clocks or time zones;
  followups  in each event, half of the articles after its first (by hash) moved 6-24 hours
             later: follow-ups that come the next morning.

    scripts/time_model.py ../shared/data/news-events-dev.jsonl \
        --set cluster.time_penalty_per_hour=0.1,0.02 --set cluster.time_penalty_max=0.05,1 \
        [--bin PATH] [--json]

Prints one row per combination of the knobs: B-cubed F1 on each variant, and the loss of the
skewed and follow-up variants against the dump as it is. Stdlib only; needs a built binary
(default target/release/perps-news).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from split_half import sweep  # the same `perps-news sweep --json` call


def h(text, salt):
    return int(hashlib.sha256((salt + text).encode()).hexdigest(), 16)


def epoch(ts):
    # RFC 3339 UTC with second precision (what the dev set uses).
    import datetime
    return int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())


def rfc3339(secs):
    import datetime
    return datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def moved(rows, delta):
    """The rows with `delta(row)` seconds (or None: unchanged) added to their date."""
    out = []
    for r in rows:
        d = delta(r)
        out.append(dict(r, published_at=rfc3339(epoch(r["published_at"]) + d)) if d else dict(r))
    return out


def hours_between(r, lo, hi):
    """A deterministic amount in [lo, hi] hours, picked by the id."""
    return int(lo * 3600) + h(r["id"], "amount") % int((hi - lo) * 3600 + 1)


def variants(rows):
    def skew(r):
        if h(r["id"], "skew") % 3:
            return None
        d = hours_between(r, 2, 5)
        return d if h(r["id"], "sign") % 2 else -d

    first = {}
    for r in sorted(rows, key=lambda r: (r["published_at"], r["id"])):
        first.setdefault(r["label"], r["id"])

    def follow(r):
        if first[r["label"]] == r["id"] or h(r["id"], "follow") % 2:
            return None
        return hours_between(r, 6, 24)

    return {
        "dev": rows,
        "published": [r for r in rows if r.get("date_kind") == "published"],
        "skewed": moved(rows, skew),
        "followups": moved(rows, follow),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gold")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "perps-news"))
    ap.add_argument("--json", action="store_true", help="one JSON object per combination")
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.gold, encoding="utf-8") if l.strip()]
    names = ["dev", "published", "skewed", "followups"]
    scores = {}
    with tempfile.TemporaryDirectory() as d:
        for name, vrows in variants(rows).items():
            p = os.path.join(d, name + ".jsonl")
            with open(p, "w", encoding="utf-8") as f:
                for r in vrows:
                    f.write(json.dumps(r) + "\n")
            for r in sweep(args.bin, p, args.sets):
                scores.setdefault(tuple(r["knobs"]), {})[name] = r["scores"]["bcubed_f1"]
    if not args.json:
        print(f"{'knobs':<90} " + " ".join(f"{n:>9}" for n in names) + f" {'skew loss':>9} {'follow loss':>11}")
    for knobs, s in scores.items():
        skew_loss = s["dev"] - s["skewed"]
        follow_loss = s["dev"] - s["followups"]
        if args.json:
            print(json.dumps({"knobs": list(knobs), **s, "skew_loss": skew_loss, "follow_loss": follow_loss}))
        else:
            label = " ".join(k.replace("cluster.", "") for k in knobs) or "(defaults)"
            print(f"{label:<90} " + " ".join(f"{s[n]:>9.4f}" for n in names) + f" {skew_loss:>9.4f} {follow_loss:>11.4f}")


if __name__ == "__main__":
    sys.exit(main())
