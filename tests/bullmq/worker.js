// A Node BullMQ worker. Prints {"ready": true} once it listens, then one JSON line per
// job it completed: {id, name, data}. SIGTERM/SIGINT: close gracefully, exit 0.
//
// spec: {url, prefix, queue, concurrency, mode}
//   mode "echo"  (default): returns {ok: true, name, data}
//   mode "bench": a deliberately light stand-in for clustering, for benches/worker.rs:
//     lowercases each inline article's title into a word set and puts it in the first
//     in-memory cluster whose first title shares >= 50% of its words (Jaccard), else opens
//     one; returns {totalProcessed, newClusters, stories}. No embedding, no shared state,
//     no lock, no Redis besides BullMQ itself.
'use strict';
const { Worker } = require('bullmq');
const { spec, connection } = require('./common');

const clusters = []; // [{id, words:Set}]

function words(title) {
  return new Set(String(title || '').toLowerCase().split(/[^a-z0-9]+/).filter((w) => w.length > 0));
}

function jaccard(a, b) {
  let inter = 0;
  for (const w of a) if (b.has(w)) inter++;
  const union = a.size + b.size - inter;
  return union === 0 ? 0 : inter / union;
}

function cluster(articles) {
  let opened = 0;
  const stories = new Set();
  for (const a of articles) {
    const w = words(a.title);
    let found = clusters.find((c) => jaccard(c.words, w) >= 0.5);
    if (!found) {
      found = { id: 'n' + clusters.length, words: w };
      clusters.push(found);
      opened++;
    }
    stories.add(found.id);
  }
  return { totalProcessed: articles.length, newClusters: opened, stories: [...stories] };
}

async function main() {
  const s = spec();
  const worker = new Worker(
    s.queue,
    async (job) => {
      if (s.mode === 'bench') return cluster((job.data && job.data.articles) || []);
      return { ok: true, name: job.name, data: job.data };
    },
    { connection: connection(s.url), prefix: s.prefix || 'bull', concurrency: s.concurrency || 1 },
  );
  worker.on('completed', (job) => {
    if (s.mode !== 'bench') console.log(JSON.stringify({ id: job.id, name: job.name, data: job.data }));
  });
  await worker.waitUntilReady();
  console.log(JSON.stringify({ ready: true }));
  const stop = async () => {
    await worker.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
