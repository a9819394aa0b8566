#!/usr/bin/env node
// Consume perps-news events from Redis with ioredis: `news:story` (a story opened, updated,
// turned breaking or closed) and `news:clustered` (a run's summary).
//
// Reads the streams of the same names rather than pub/sub: a stream keeps what was published
// while the consumer was away (pub/sub drops it), so a restart misses nothing. Prints one
// JSON line per event: {"channel": ..., "id": ..., "event": {...}}.
//
//   npm install ioredis
//   REDIS_URL=redis://perps-news:PASSWORD@127.0.0.1:6380/0 node examples/consumer.js
//   node examples/consumer.js --from-start --until-clustered   # replay, stop after a run
//   node examples/consumer.js --symbol BTC --min-importance 40 --event breaking
//
// The filters apply to `news:story` events (summaries always pass). For one market over
// pub/sub instead, `sub.psubscribe("news:symbol:BTC")` gets the same payloads live.

"use strict";
const Redis = require("ioredis");

const CHANNELS = ["news:story", "news:clustered"];

// The value after `--flag` on the command line, every one of them.
function values(flag) {
  const out = [];
  process.argv.forEach((a, i) => { if (a === flag && i + 1 < process.argv.length) out.push(process.argv[i + 1]); });
  return out;
}

async function main() {
  const fromStart = process.argv.includes("--from-start");
  const untilClustered = process.argv.includes("--until-clustered");
  const symbol = (values("--symbol")[0] || "").toUpperCase();
  const minImportance = values("--min-importance").map(Number)[0];
  const kinds = values("--event");
  const wanted = (e) =>
    (!symbol || (e.symbols || []).some((s) => s.toUpperCase() === symbol)) &&
    (minImportance === undefined || (e.importance || 0) >= minImportance) &&
    (kinds.length === 0 || kinds.includes(e.event));
  const redis = new Redis(process.env.REDIS_URL || "redis://127.0.0.1:6380/0");
  // Where to start: the beginning, or the newest entry now (not "$", which would be
  // resolved anew at each call and could skip what arrives in between).
  const last = {};
  for (const ch of CHANNELS) {
    const newest = await redis.xrevrange(ch, "+", "-", "COUNT", 1);
    last[ch] = fromStart || newest.length === 0 ? "0-0" : newest[0][0];
  }
  console.log(JSON.stringify({ ready: true }));
  for (;;) {
    const reply = await redis.xread(
      "BLOCK", 5000, "STREAMS", ...CHANNELS, ...CHANNELS.map((c) => last[c]));
    for (const [channel, entries] of reply || []) {
      for (const [id, fields] of entries) {
        last[channel] = id;
        const event = JSON.parse(fields[fields.indexOf("payload") + 1]);
        if (channel === "news:story" && !wanted(event)) continue;
        console.log(JSON.stringify({ channel, id, event }));
        if (untilClustered && channel === "news:clustered") {
          redis.disconnect();
          return;
        }
      }
    }
  }
}

main().catch((e) => {
  console.error(`consumer: ${e.message}`);
  process.exit(2);
});
