// pages.mjs opens one of wssgate's pages (the landing page on the public
// port, the dashboard on the admin port) in headless Chromium (Debian's,
// driven by playwright-core) and prints what it shows as JSON lines on
// stdout: every element with an id (text, and href for links), every
// table's rows, the page's requests and console lines. It exits non-zero
// with a message on stderr on any failure.
//
// Usage: node pages.mjs URL
//
// Environment:
//   ACCEPT_HTML=1   also check that the page came as text/html
//   WAIT_ID, WAIT_TEXT  after the first snapshot line, wait (without
//               reloading) until the element WAIT_ID shows WAIT_TEXT, then
//               print a second snapshot line
//   SCREENSHOT  write a PNG of the page here (after the last snapshot)
//   SPKI / IGNORE_CERT_ERRORS=1  trust the gateway's self-signed certificate
//   CHROMIUM    browser binary (default /usr/bin/chromium)
//   TIMEOUT_MS  hard limit for the whole run (default 30000)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.argv[2];
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);
let cleanup = async () => {};

async function fail (msg) {
  process.stderr.write(`pages.mjs: ${msg}\n`);
  await Promise.race([cleanup(), new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

// snapshot runs in the page.
function snapshot () {
  const ids = {};
  for (const e of document.querySelectorAll('[id]')) {
    ids[e.id] = { text: e.textContent.trim(), href: e.getAttribute('href') || undefined };
  }
  const tables = {};
  for (const t of document.querySelectorAll('table[id]')) {
    tables[t.id] = [...t.querySelectorAll('tr')].map((tr) => [...tr.children].map((c) => c.textContent.trim()));
  }
  return { title: document.title, ids, tables, updates: Number(document.body.dataset.updates || 0), loadMark: window.__loadMark };
}

async function main () {
  if (!url) return fail('no URL');
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-features=LocalNetworkAccessChecks'];
  if (process.env.SPKI) args.push(`--ignore-certificate-errors-spki-list=${process.env.SPKI}`);
  else if (process.env.IGNORE_CERT_ERRORS === '1') args.push('--ignore-certificate-errors');
  const userDataDir = await mkdtemp(join(tmpdir(), 'wssgate-pages-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args, timeout: timeoutMs,
    viewport: { width: 1100, height: 900 }
  });
  cleanup = async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  };
  const page = context.pages()[0] || await context.newPage();
  const consoleLines = [];
  const requests = [];
  let navigations = 0;
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
  const res = await page.goto(url, { waitUntil: 'load' });
  const contentType = res.headers()['content-type'] || '';
  if (process.env.ACCEPT_HTML === '1' && !contentType.startsWith('text/html')) {
    return fail(`${url}: content-type ${contentType}, status ${res.status()}: ${(await res.text()).slice(0, 300)}`);
  }
  await page.evaluate(() => { window.__loadMark = Math.random(); });
  // The dashboard renders after its first fetch.
  if (process.env.WAIT_ID) {
    await page.waitForFunction(() => Number(document.body.dataset.updates || 0) > 0, null, { timeout: timeoutMs });
  }
  const emit = async () => {
    const s = await page.evaluate(snapshot);
    process.stdout.write(JSON.stringify({ url, status: res.status(), contentType, navigations, requests, console: consoleLines, ...s }) + '\n');
  };
  await emit();
  if (process.env.WAIT_ID) {
    await page.waitForFunction(({ id, text }) => document.getElementById(id)?.textContent.trim() === text,
      { id: process.env.WAIT_ID, text: process.env.WAIT_TEXT }, { timeout: timeoutMs, polling: 100 });
    await emit();
  }
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  await cleanup();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
