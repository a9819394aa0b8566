// Shared by producer.js and worker.js: the spec from argv and the ioredis connection.
'use strict';

// The spec: argv[2] is JSON, or @FILE holding JSON (large specs exceed the argument limit).
function spec() {
  const raw = process.argv[2];
  if (!raw) {
    console.error('usage: node <script> \'<json spec>\' | @spec.json');
    process.exit(2);
  }
  return JSON.parse(raw.startsWith('@') ? require('fs').readFileSync(raw.slice(1), 'utf8') : raw);
}

// redis://[user:password@]host:port/db -> ioredis options (BullMQ workers need
// maxRetriesPerRequest null). The user is the ACL user of the project's Redis config.
function connection(url) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    username: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
    maxRetriesPerRequest: null,
  };
}

module.exports = { spec, connection };
