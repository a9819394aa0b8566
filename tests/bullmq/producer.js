// Adds jobs to a queue the way the trading system's Node producers do, then (unless
// spec.wait is false) polls until every job is completed or failed and prints one JSON
// array: [{id, name, state, returnvalue, failedReason, attemptsMade, timestamp,
// processedOn, finishedOn}], in the order the jobs were given.
//
// spec: {url, prefix, queue, jobs: [{name, data, opts}], wait, timeoutMs}
'use strict';
const { Queue, Job } = require('bullmq');
const { spec, connection } = require('./common');

async function main() {
  const s = spec();
  const queue = new Queue(s.queue, { connection: connection(s.url), prefix: s.prefix || 'bull' });
  const added = [];
  for (const j of s.jobs) {
    added.push(await queue.add(j.name, j.data, j.opts || {}));
  }
  if (s.wait === false) {
    console.log(JSON.stringify(added.map((j) => ({ id: j.id, name: j.name }))));
    await queue.close();
    return;
  }
  const deadline = Date.now() + (s.timeoutMs || 30000);
  const out = new Array(added.length).fill(null);
  while (out.some((o) => o === null) && Date.now() < deadline) {
    for (let i = 0; i < added.length; i++) {
      if (out[i] !== null) continue;
      const state = await queue.getJobState(added[i].id);
      if (state === 'completed' || state === 'failed') {
        const job = await Job.fromId(queue, added[i].id);
        out[i] = {
          id: job.id,
          name: job.name,
          state,
          returnvalue: job.returnvalue,
          failedReason: job.failedReason,
          attemptsMade: job.attemptsMade,
          timestamp: job.timestamp,
          processedOn: job.processedOn,
          finishedOn: job.finishedOn,
        };
      }
    }
    if (out.some((o) => o === null)) await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 0; i < added.length; i++) {
    if (out[i] === null) {
      out[i] = { id: added[i].id, name: added[i].name, state: await queue.getJobState(added[i].id) };
    }
  }
  console.log(JSON.stringify(out));
  await queue.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
