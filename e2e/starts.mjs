// starts.mjs starts @polkadot/api's ApiPromise against a URL again and
// again, as wallets and dapps do on every page load: each instance connects,
// fetches what it needs (genesis hash, runtime version, metadata, ...),
// becomes ready and disconnects. It prints one JSON line: the starts made
// and how long they took.
//
// Usage: node starts.mjs URL
//
// Environment:
//   STARTS       ApiPromise starts in all (default 100)
//   CONCURRENCY  starts in flight at once (default 10)
//   TIMEOUT_MS   hard limit for the whole run (default 300000)
import { ApiPromise, WsProvider } from '@polkadot/api';

const url = process.argv[2];
const starts = Number(process.env.STARTS ?? 100);
const concurrency = Number(process.env.CONCURRENCY ?? 10);
const timeoutMs = Number(process.env.TIMEOUT_MS || 300000);

const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = console.info = console.debug = console.warn = console.error = toStderr;

function fail (msg) {
  process.stderr.write(`starts.mjs: ${msg}\n`);
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

async function one () {
  const provider = new WsProvider(url, 1000, {}, 30000);
  const api = await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
  await api.disconnect();
}

async function main () {
  if (!url) {
    fail('no URL');
  }
  const started = Date.now();
  let next = 0;
  const workers = [];
  for (let w = 0; w < concurrency; w++) {
    workers.push((async () => {
      while (next < starts) {
        next++;
        await one();
      }
    })());
  }
  await Promise.all(workers);
  process.stdout.write(JSON.stringify({ starts, elapsedMs: Date.now() - started }) + '\n');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
