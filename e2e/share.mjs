// share.mjs holds many @polkadot/api clients in one process, each
// subscribed to new heads through one URL, for the shared-mode tests: a
// few full ApiPromise instances and many WsProviders (the transport
// ApiPromise runs on, without decoding the metadata again for each).
//
// Usage: node share.mjs URL
//
// Environment:
//   CLIENTS     clients in all (default 100)
//   APIS        of them, full ApiPromise instances (default 5)
//   TIMEOUT_MS  hard limit for the whole run (default 60000)
//
// It prints one JSON line per event on stdout:
//   {"ready":N}            every client has its first head
//   {"head":H}             every connected client has received head H
//   {"left":M}             M clients disconnected (on the command "leave M")
//   {"report":{...}}       on "report": clients, heads seen, problems
// and reads commands, one per line, on stdin: "leave M", "report", "exit".
import { ApiPromise, WsProvider } from '@polkadot/api';
import readline from 'node:readline';

const url = process.argv[2];
const total = Number(process.env.CLIENTS ?? 100);
const apis = Math.min(total, Number(process.env.APIS ?? 5));
const timeoutMs = Number(process.env.TIMEOUT_MS || 60000);

const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = console.info = console.debug = console.warn = console.error = toStderr;

function fail (msg) {
  process.stderr.write(`share.mjs: ${msg}\n`);
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Each client: its heads in arrival order and how to leave.
const clients = [];
const seen = new Map(); // head number -> connected clients that have it
let readyCount = 0;

function onHead (c, number) {
  c.heads.push(number);
  if (c.heads.length === 1) {
    readyCount++;
    if (readyCount === total) {
      out({ ready: total });
    }
    return;
  }
  if (readyCount < total) {
    return;
  }
  const n = (seen.get(number) || 0) + 1;
  seen.set(number, n);
  if (n === clients.filter((x) => !x.left).length) {
    out({ head: number });
  }
}

async function startApi (i) {
  const provider = new WsProvider(url, 1000, {}, 30000);
  const api = await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
  const c = { i, kind: 'api', heads: [], left: false, disconnect: () => api.disconnect() };
  clients.push(c);
  await api.rpc.chain.subscribeNewHeads((h) => onHead(c, h.number.toNumber()));
}

async function startProvider (i) {
  const provider = new WsProvider(url, 1000, {}, 30000);
  await provider.isReady;
  const c = { i, kind: 'provider', heads: [], left: false, disconnect: () => provider.disconnect() };
  clients.push(c);
  await provider.subscribe('chain_newHead', 'chain_subscribeNewHeads', [], (err, h) => {
    if (err) {
      fail(`client ${i}: ${err.message}`);
    }
    onHead(c, parseInt(h.number, 16));
  });
}

function report () {
  const problems = [];
  for (const c of clients) {
    for (let k = 1; k < c.heads.length; k++) {
      if (c.heads[k] !== c.heads[k - 1] + 1) {
        problems.push(`client ${c.i} (${c.kind}): head ${c.heads[k]} after ${c.heads[k - 1]}`);
        break;
      }
    }
  }
  const connected = clients.filter((c) => !c.left);
  return {
    clients: clients.length,
    connected: connected.length,
    apis: clients.filter((c) => c.kind === 'api').length,
    minHeads: Math.min(...connected.map((c) => c.heads.length)),
    maxHead: Math.max(...clients.map((c) => c.heads[c.heads.length - 1] ?? 0)),
    problems: problems.slice(0, 20)
  };
}

async function main () {
  if (!url) {
    fail('no URL');
  }
  const starts = [];
  for (let i = 0; i < total; i++) {
    starts.push(i < apis ? startApi(i) : startProvider(i));
  }
  await Promise.all(starts);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'leave') {
      const m = Number(arg);
      // Leave from both kinds: the last ApiPromise instances and the
      // first WsProviders.
      const leaving = clients.filter((c) => !c.left).sort((a, b) => (a.kind === b.kind ? a.i - b.i : a.kind === 'api' ? -1 : 1)).slice(0, m);
      await Promise.all(leaving.map(async (c) => { c.left = true; await c.disconnect(); }));
      out({ left: leaving.length });
    } else if (cmd === 'report') {
      out({ report: report() });
    } else if (cmd === 'exit') {
      break;
    }
  }
  await Promise.all(clients.filter((c) => !c.left).map((c) => c.disconnect()));
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
