// follow.mjs is a client of the new JSON-RPC API: polkadot-api's
// substrate-client follows the chain with chainHead_v1_follow, reads the
// first finalized block's header, body and a runtime call (operations
// whose results come as follow events), unpins the blocks it is done with,
// waits for new blocks and unfollows. It prints one JSON line of what it
// saw on stdout and exits non-zero with a message on stderr on failure.
//
// Usage: node follow.mjs URL
//
// Environment:
//   BLOCKS      new blocks to wait for (default 2)
//   TIMEOUT_MS  hard limit for the whole run (default 30000)
import { createClient } from '@polkadot-api/substrate-client';
import { getWsProvider } from '@polkadot-api/ws-provider';
import WebSocket from 'ws'; // Node 20 has no global WebSocket

const started = Date.now();
const url = process.argv[2];
const blocks = Number(process.env.BLOCKS ?? 2);
const timeoutMs = Number(process.env.TIMEOUT_MS || 30000);

const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = console.info = console.debug = console.warn = console.error = toStderr;

function fail (msg) {
  process.stderr.write(`follow.mjs: ${msg}\n`);
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

async function main () {
  if (!url) {
    fail('no URL');
  }
  const client = createClient(getWsProvider(url, { websocketClass: WebSocket }));
  const result = { newBlocks: 0, bestBlockChanged: 0, finalized: 0, unpinned: 0, events: [] };
  let follow;
  let resolveInit, resolveBlocks;
  const initialized = new Promise((resolve) => { resolveInit = resolve; });
  const enough = new Promise((resolve) => { resolveBlocks = resolve; });
  follow = client.chainHead(true, (ev) => {
    result.events.push(ev.type);
    switch (ev.type) {
      case 'initialized':
        resolveInit(ev);
        break;
      case 'newBlock':
        result.newBlocks++;
        break;
      case 'bestBlockChanged':
        result.bestBlockChanged++;
        break;
      case 'finalized':
        result.finalized++;
        // Done with them: unpin, as a client must to keep the node's
        // pinned set bounded.
        follow.unpin(ev.finalizedBlockHashes).then(() => { result.unpinned += ev.finalizedBlockHashes.length; }, (e) => fail(`unpin: ${e.message}`));
        if (result.newBlocks >= blocks && result.finalized >= blocks) {
          resolveBlocks();
        }
        break;
      case 'stop':
        fail('the follow subscription stopped');
        break;
    }
  }, (err) => fail(`follow: ${err && err.message}`));
  const init = await initialized;
  const hash = init.finalizedBlockHashes[init.finalizedBlockHashes.length - 1];
  result.runtime = init.finalizedBlockRuntime?.spec?.specName ?? null;
  const [header, body, versions] = await Promise.all([
    follow.header(hash),
    follow.body(hash),
    follow.call(hash, 'Metadata_metadata_versions', '0x')
  ]);
  result.headerBytes = (header.length - 2) / 2;
  result.bodyLength = body.length;
  result.metadataVersions = versions;
  await enough;
  follow.unfollow();
  client.destroy();
  result.events = [...new Set(result.events)];
  result.elapsedMs = Date.now() - started;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
