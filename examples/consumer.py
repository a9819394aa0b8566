#!/usr/bin/env python3
"""Consume perps-news events from Redis with redis-py: `news:story` (a story opened,
updated, turned breaking or closed) and `news:clustered` (a run's summary).

Reads the streams of the same names rather than pub/sub: a stream keeps what was published
while the consumer was away (pub/sub drops it), so a restart misses nothing. Prints one JSON
line per event: {"channel": ..., "id": ..., "event": {...}}.

    pip install redis
    REDIS_URL=redis://perps-news:PASSWORD@127.0.0.1:6380/0 python3 examples/consumer.py
    python3 examples/consumer.py --from-start --until-clustered   # replay, stop after a run
    python3 examples/consumer.py --symbol BTC --min-importance 40 --event breaking

The filters apply to `news:story` events (summaries always pass). For one market over
pub/sub instead, `r.pubsub().psubscribe("news:symbol:BTC")` gets the same payloads live.
"""

import argparse
import json
import os
import sys

import redis

CHANNELS = ("news:story", "news:clustered")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-start", action="store_true", help="replay the streams first")
    ap.add_argument("--until-clustered", action="store_true",
                    help="exit after the next news:clustered (the end of a run)")
    ap.add_argument("--symbol", help="only stories touching this perp symbol")
    ap.add_argument("--min-importance", type=float, help="only stories of at least this importance")
    ap.add_argument("--event", action="append", choices=("opened", "updated", "breaking", "closed"),
                    help="only events of this kind (repeatable)")
    args = ap.parse_args()

    def wanted(event: dict) -> bool:
        if args.symbol and args.symbol.upper() not in (s.upper() for s in event.get("symbols", [])):
            return False
        if args.min_importance is not None and event.get("importance", 0) < args.min_importance:
            return False
        return not args.event or event.get("event") in args.event

    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6380/0"),
                             decode_responses=True)
    # Where to start: the beginning, or the newest entry now (not "$", which would be
    # resolved anew at each call and could skip what arrives in between).
    last = {}
    for ch in CHANNELS:
        newest = r.xrevrange(ch, "+", "-", count=1)
        last[ch] = "0-0" if args.from_start or not newest else newest[0][0]
    print(json.dumps({"ready": True}), flush=True)
    while True:
        for channel, entries in r.xread(last, block=5000) or []:
            for entry_id, fields in entries:
                last[channel] = entry_id
                event = json.loads(fields["payload"])
                if channel == "news:story" and not wanted(event):
                    continue
                print(json.dumps({"channel": channel, "id": entry_id, "event": event}),
                      flush=True)
                if args.until_clustered and channel == "news:clustered":
                    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
