// browser.mjs opens a WebSocket from headless Chromium (Debian's, driven by
// playwright-core) to a node or gateway, sends JSON-RPC requests, waits for
// new heads and prints one JSON line of results on stdout. It exits
// non-zero with a message on stderr on any failure.
//
// Usage: node browser.mjs [URL]
//
// Environment:
//   WSS_URL     URL when no argument is given (ws:// or wss://)
//   HEADS       chain_newHead notifications to wait for (default 2)
//   PAGE_URL    page to open first, which sets the Origin (default about:blank)
//   SPKI        base64 SHA-256 of the server's public key (SPKI) to trust,
//               for a self-signed wss:// certificate
//   IGNORE_CERT_ERRORS=1  trust any certificate instead (when SPKI is unset)
//   CHROMIUM    browser binary (default /usr/bin/chromium)
//   TIMEOUT_MS  hard limit for the whole run (default 30000)
//   METADATA=1  also call state_getMetadata last and report its result
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const started = Date.now();
const url = process.argv[2] || process.env.WSS_URL;
const heads = Number(process.env.HEADS ?? 2);
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);
const pageURL = process.env.PAGE_URL || 'about:blank';

let cleanup = async () => {};

async function fail (msg) {
  process.stderr.write(`browser.mjs: ${msg}\n`);
  await Promise.race([cleanup(), new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(1);
}

setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

// inPage runs inside the page: a minimal JSON-RPC client over WebSocket.
async function inPage ({ url, heads, budget, withMetadata }) {
  const ws = new WebSocket(url);
  const pending = new Map();
  const notes = [];
  let nextId = 1;
  let onNote = () => {};
  const closed = new Promise((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
  });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`WebSocket to ${url} failed`));
  });
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m.id !== undefined && pending.has(m.id)) {
        pending.get(m.id)(m);
        pending.delete(m.id);
      } else if (m.method) {
        notes.push(m);
        onNote();
      }
    }
  };
  const timeout = (what) => new Promise((_resolve, reject) =>
    setTimeout(() => reject(new Error(`${what}: no answer in ${budget} ms`)), budget));
  const send = (reqs) => Promise.race([
    Promise.all(reqs.map((r) => new Promise((resolve) => pending.set(r.id, resolve)))),
    timeout(reqs.map((r) => r.method).join(','))
  ]);
  const req = (method, params = []) => ({ jsonrpc: '2.0', id: nextId++, method, params });

  const single = [req('system_chain'), req('system_health'), req('chain_getHeader'), req('chain_getBlockHash', [0])];
  const singleReplies = [];
  for (const r of single) {
    const p = send([r]);
    ws.send(JSON.stringify(r));
    singleReplies.push((await p)[0]);
  }
  const batch = [req('system_name'), req('test_echo', ['browser'])];
  const pb = send(batch);
  ws.send(JSON.stringify(batch));
  const batchReplies = await pb;

  const sub = req('chain_subscribeNewHeads');
  const ps = send([sub]);
  ws.send(JSON.stringify(sub));
  const [subReply] = await ps;
  if (subReply.error) {
    throw new Error(`chain_subscribeNewHeads: ${JSON.stringify(subReply.error)}`);
  }
  const headNotes = () => notes.filter((n) => n.method === 'chain_newHead' && n.params.subscription === subReply.result);
  await Promise.race([
    new Promise((resolve) => {
      onNote = () => headNotes().length >= heads && resolve();
      onNote();
    }),
    timeout(`waiting for ${heads} chain_newHead`)
  ]);
  let metadata;
  if (withMetadata) { // a big reply, last, so the ids above stay as they are
    const m = req('state_getMetadata');
    const pm = send([m]);
    ws.send(JSON.stringify(m));
    metadata = (await pm)[0].result;
  }
  ws.close(1000, 'done');
  return {
    extensions: ws.extensions,
    metadata,
    userAgent: navigator.userAgent,
    origin: self.origin,
    replies: Object.fromEntries(single.map((r, i) => [r.method, singleReplies[i]])),
    batch: batchReplies,
    subscription: subReply.result,
    heads: headNotes().slice(0, heads).map((n) => parseInt(n.params.result.number, 16)),
    close: await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(null), 2000))])
  };
}

async function main () {
  if (!url) {
    return fail('no URL: pass it as an argument or set WSS_URL');
  }
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // Chromium 142+ blocks a public or opaque origin (about:blank) from
    // reaching loopback addresses unless the user allows it.
    '--disable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets'
  ];
  if (process.env.SPKI) {
    args.push(`--ignore-certificate-errors-spki-list=${process.env.SPKI}`);
  } else if (process.env.IGNORE_CERT_ERRORS === '1') {
    args.push('--ignore-certificate-errors');
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'wssgate-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    timeout: timeoutMs
  });
  cleanup = async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  };
  const page = context.pages()[0] || await context.newPage();
  const console = [];
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  await page.goto(pageURL);
  const budget = Math.max(1000, timeoutMs - (Date.now() - started) - 2000);
  let result;
  try {
    result = await page.evaluate(inPage, { url, heads, budget, withMetadata: process.env.METADATA === '1' });
  } catch (e) {
    return fail(`${e.message}\npage console:\n${console.join('\n')}`);
  }
  await cleanup();
  process.stdout.write(JSON.stringify({
    ok: true,
    url,
    browser: context.browser()?.version() ?? null,
    ...result,
    console,
    elapsedMs: Date.now() - started
  }) + '\n', () => process.exit(0)); // exit once written: see polkadot.mjs
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
