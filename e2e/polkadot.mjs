// polkadot.mjs connects @polkadot/api's ApiPromise to a node or gateway,
// calls a few RPCs, waits for new heads and prints one JSON line of results
// on stdout. It exits non-zero with a message on stderr on any failure.
//
// Usage: node polkadot.mjs [URL]
//
// Environment:
//   WSS_URL        URL when no argument is given (ws:// or wss://)
//   HEADS          new heads to wait for (default 2)
//   CALLS          comma-separated methods to call after the checks, such
//                  as author_rotateKeys; each outcome is reported
//   EXPECT_CALLS   "error" (each of CALLS must fail with a JSON-RPC error),
//                  "ok" (each must succeed) or "any" (default)
//   TIMEOUT_MS     hard limit for the whole run (default 30000)
//   NODE_EXTRA_CA_CERTS  PEM file to trust, for a self-signed wss:// cert
import { ApiPromise, WsProvider } from '@polkadot/api';

const started = Date.now();
const url = process.argv[2] || process.env.WSS_URL;
const heads = Number(process.env.HEADS ?? 2);
const calls = (process.env.CALLS || '').split(',').map((s) => s.trim()).filter(Boolean);
const expectCalls = process.env.EXPECT_CALLS || 'any';
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);

// polkadot-js logs with console.log too: keep stdout for the result line
// and collect warnings so that the caller can assert there were none.
const warnings = [];
const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = console.info = console.debug = toStderr;
console.warn = console.error = (...args) => {
  warnings.push(args.map(String).join(' '));
  toStderr(...args);
};

function fail (msg) {
  process.stderr.write(`polkadot.mjs: ${msg}\n`);
  process.exit(1);
}

setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

function withTimeout (promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))
  ]);
}

async function callRaw (api, name) {
  const [section, method] = name.split('_');
  const fn = api.rpc[section]?.[method];
  if (!fn) {
    throw new Error(`api.rpc.${section}.${method} is not decorated (is ${name} in rpc_methods?)`);
  }
  try {
    const res = await withTimeout(fn(), 10000, name);
    return { ok: true, result: res.toJSON() };
  } catch (e) {
    // RpcError messages look like "-32601: Method not found".
    const m = /^(-?\d+): (.*)$/s.exec(e.message);
    return { ok: false, code: m ? Number(m[1]) : null, message: m ? m[2] : e.message };
  }
}

async function main () {
  if (!url) {
    fail('no URL: pass it as an argument or set WSS_URL');
  }
  const provider = new WsProvider(url, 1000, {}, 15000);
  const api = await withTimeout(
    ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true }),
    timeoutMs, 'ApiPromise.create');

  const [chain, health, header, genesisHash] = await Promise.all([
    api.rpc.system.chain(),
    api.rpc.system.health(),
    api.rpc.chain.getHeader(),
    api.rpc.chain.getBlockHash(0)
  ]);
  const bestHash = await api.rpc.chain.getBlockHash(header.number.toNumber());

  const got = [];
  let unsub;
  await withTimeout(new Promise((resolve, reject) => {
    api.rpc.chain.subscribeNewHeads((h) => {
      // Heads that arrive after the wanted count (before unsub runs) are
      // not the test's: keep exactly `heads`.
      if (got.length < heads) {
        got.push({ number: h.number.toNumber(), hash: h.hash.toHex() });
      }
      if (got.length >= heads) {
        resolve();
      }
    }).then((u) => { unsub = u; }, reject);
    if (heads === 0) {
      resolve();
    }
  }), timeoutMs, `waiting for ${heads} new heads (got ${got.length})`);
  if (unsub) {
    unsub();
  }

  const outcomes = {};
  for (const name of calls) {
    const out = await callRaw(api, name);
    if (expectCalls === 'error' && out.ok) {
      fail(`${name} succeeded, expected a JSON-RPC error`);
    }
    if (expectCalls === 'ok' && !out.ok) {
      fail(`${name} failed: ${out.code} ${out.message}`);
    }
    outcomes[name] = out;
  }

  const result = {
    ok: true,
    url,
    chain: chain.toString(),
    health: health.toJSON(),
    genesisHash: genesisHash.toHex(),
    specName: api.runtimeVersion.specName.toString(),
    specVersion: api.runtimeVersion.specVersion.toNumber(),
    metadataVersion: api.runtimeMetadata.version,
    header: { number: header.number.toNumber(), hash: header.hash.toHex() },
    hashMatches: header.hash.toHex() === bestHash.toHex(),
    heads: got,
    calls: outcomes,
    warnings,
    elapsedMs: Date.now() - started
  };
  await api.disconnect();
  // Exit once the line is written: on a pipe the write is asynchronous,
  // and exiting at once would cut a long line (state_getMetadata's).
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
