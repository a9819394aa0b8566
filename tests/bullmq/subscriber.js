// A trading agent's view of the bus: ioredis PSUBSCRIBE on the given patterns, printing every
// message as {pattern, channel, payload} in one JSON array once `count` arrived (or at
// `timeoutMs`). It writes "subscribed" on stderr once the subscriptions are in place.
// spec: {url, patterns: [...], count, timeoutMs}
'use strict';
const Redis = require('ioredis');
const { spec, connection } = require('./common');

const s = spec();
const sub = new Redis(connection(s.url));
const got = [];
let done = false;
function finish(code) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(got) + '\n');
  sub.disconnect();
  process.exit(code);
}
sub.on('pmessage', (pattern, channel, message) => {
  let payload;
  try {
    payload = JSON.parse(message);
  } catch (e) {
    payload = message;
  }
  got.push({ pattern, channel, payload });
  if (got.length >= s.count) finish(0);
});
sub.psubscribe(...s.patterns).then(() => process.stderr.write('subscribed\n'));
setTimeout(() => finish(0), s.timeoutMs || 30000);
