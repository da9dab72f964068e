// Package rpctest provides a fake Substrate node for tests: a JSON-RPC 2.0
// server on real sockets that speaks WebSocket (with subscriptions), HTTP
// POST and the /health endpoints on one port, like a node's 9944.
//
// [Start] returns a [Node]. It serves real runtime metadata (the Substrate
// kitchensink runtime, metadata v15) so that @polkadot/api's ApiPromise can
// connect, and records what clients sent ([Node.Seen], [Node.Headers]) so
// that tests can check what a gateway let through. Tests drive it with
// [Node.Advance], [Node.SetHealth], [Node.Stall], [Node.Kill] and
// [Node.Close]; [Node.PauseBlocks] and [Node.StallFinality] make a node
// whose head or finality stops moving.
//
// Besides Substrate's methods it serves test_echo (returns its params) and
// test_big ([n] returns a string of n bytes), and answers every method of
// [UnsafeMethods] successfully, or refuses them all as --rpc-methods safe
// does with [Options.SafeRPCMethods].
//
// [RunPolkadot] and [RunBrowser] run the JavaScript clients in e2e/ against
// any URL.
//
// # Differences from Substrate
//
// Every block is final at once (unless [Node.StallFinality]) and has no
// extrinsics or digest items.
// state_getStorage and friends return null. Requests on one connection are
// answered in order.
package rpctest
