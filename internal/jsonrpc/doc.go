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
// Parse is never more lenient than encoding/json.Valid, and is stricter in
// three ways: strings must be valid UTF-8, nesting deeper than [MaxDepth] is
// refused, and envelope members (jsonrpc, id, method, params, result, error)
// may appear only once, because serde on the node rejects duplicate fields and
// the gateway must never judge one method while the node runs another.
package jsonrpc
