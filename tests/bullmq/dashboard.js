// Drives the dashboard page in a real headless Chromium for tests/dashboard.rs.
// argv[2]: the page url; argv[3]: a new, empty profile directory.
// Talks over stdin/stdout, one JSON line each way:
//   out {"loaded": [{id, label, heat, articles, links}]}  the rows, once the first ones render
//   in  {"expect": id}                         a story the test has just published
//   out {"appeared": id, "status": text}      once its row is in the DOM
//   in  {"filter": symbol}
//   out {"visible": [[id, symbols]], "hidden": n}
//   in  {"done": true}
// Any page error, CSP violation or timeout ends it with exit code 1 and the reason.
'use strict';

const readline = require('readline');
const { chromium } = require('playwright-core');

const [url, profile] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (why) => { console.error('dashboard.js: ' + why); process.exit(1); };

async function main() {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => fail('page error: ' + e.message));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) fail('blocked: ' + m.text());
  });
  page.on('requestfailed', (r) => {
    // The event stream is cut when the browser closes; anything else is a failure.
    if (!r.url().includes('/api/events')) fail('request failed: ' + r.url());
  });
  const res = await page.goto(url);
  if (!res || res.status() !== 200) fail('page status ' + (res && res.status()));
  await page.waitForSelector('#rows tr', { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById('status').dataset.state === 'live',
    null, { timeout: 15000 });
  say({
    loaded: await page.$$eval('#rows tr', (rows) => rows.map((r) => ({
      id: r.dataset.storyId,
      label: r.querySelector('td.label').textContent,
      heat: r.querySelector('td.heat').textContent,
      articles: [...r.querySelectorAll('td.articles > *')].map((a) => a.textContent),
      links: [...r.querySelectorAll('td.articles > a')].map((a) => a.getAttribute('href')),
    }))),
  });

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const cmd = JSON.parse(line);
    if (cmd.expect) {
      await page.waitForSelector(`#rows tr[data-story-id="${cmd.expect}"]`, { timeout: 15000 });
      say({ appeared: cmd.expect, status: await page.textContent('#status') });
    } else if (cmd.filter !== undefined) {
      await page.fill('#symbol', cmd.filter);
      const rows = await page.$$eval('#rows tr', (rs) => rs.map((r) => ({
        id: r.dataset.storyId,
        symbols: r.dataset.symbols.split(' ').filter(Boolean),
        shown: getComputedStyle(r).display !== 'none',
      })));
      say({
        visible: rows.filter((r) => r.shown).map((r) => [r.id, r.symbols]),
        hidden: rows.filter((r) => !r.shown).length,
      });
    } else if (cmd.done) {
      break;
    }
  }
  await ctx.close();
}

main().catch((e) => fail(e.stack || String(e)));
