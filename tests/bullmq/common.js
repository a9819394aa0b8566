// Shared by producer.js and worker.js: the spec from argv and the ioredis connection.
'use strict';

function spec() {
  const raw = process.argv[2];
  if (!raw) {
    console.error('usage: node <script> \'<json spec>\'');
    process.exit(2);
  }
  return JSON.parse(raw);
}

// redis://host:port/db -> ioredis options (BullMQ workers need maxRetriesPerRequest null).
function connection(url) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    password: u.password || undefined,
    maxRetriesPerRequest: null,
  };
}

module.exports = { spec, connection };
