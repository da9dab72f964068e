// Package jsonrpc is wssgate's hot-path JSON-RPC 2.0 inspector.
//
// [Parse] validates a whole WebSocket message as JSON (RFC 8259) in one pass
// and, for each call in it, peeks the envelope members the gateway judges by:
// the method (decoded, as the node's serde_json decodes it), the raw id, and
// whether params, result or error are present. It never builds a tree, so a
// multi-megabyte author_submitExtrinsic costs one linear scan and, with a
// reused dst, no allocation.
//
// [AppendError] and [AppendBatch] build the gateway's own answers.
//
// # Aliasing
//
// [Call.Method], [Call.ID] and [Call.Result] point into the message passed to
// [Parse] (Method is copied only when it contains escapes). Do not modify or
// reuse that buffer while the calls are in use; clone what must outlive it.
//
// # Strictness
//
// Parse reads a message the way the node does: a Substrate node's jsonrpsee
// 0.24 server on serde_json (FuzzNodeDifferential checks it against those
// types). A call needs "jsonrpc":"2.0" and a string method; an id the node
// cannot read (anything but null, an unsigned 64-bit integer or a string, or
// two ids) makes it a notification the node runs but never answers, which
// [Call.IDKind] reports; two jsonrpc, method or params members make it an
// invalid request. An invalid request is answered with the id the node would
// use ([Call.ID] is nil when that is null).
//
// Parse is never more lenient than encoding/json.Valid (except that, like
// the node, it skips form feeds before the message), and is stricter than the
// node in three ways: strings must be valid UTF-8 everywhere, nesting deeper
// than [MaxDepth] is refused, and a batch element that is not an object is
// refused (serde_json would read an array as a positional request).
package jsonrpc
