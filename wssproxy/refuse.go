package wssproxy

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// This file holds the one place a request is refused: counted once, logged
// once, and answered in the request's own language, a JSON-RPC error for a
// JSON-RPC request and plain text for anything else.

// rpcKey carries, in a request's context, the raw id of a JSON-RPC request
// the gateway has parsed (nil: null, as for a batch).
type rpcKey struct{}

type rpcMark struct{ id []byte }

// rpcRequest marks r as a JSON-RPC request whose refusals carry id (raw
// JSON, nil for null). Call it once the body is parsed: a refusal after
// that, such as a 502 when the node is down, then echoes the caller's id.
func rpcRequest(r *http.Request, id []byte) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), rpcKey{}, rpcMark{id}))
}

// refuse answers a request the gateway will not serve with status, and
// records it: one Metrics.Refused call and one log line per request. For a
// JSON-RPC request (see isJSONRPC) the body is a JSON-RPC error object
// with the request's id when known (else null), its code chosen by reason
// (see rpcRefusalCode); otherwise it is the plain-text detail. Headers the
// caller set, such as Retry-After, are kept.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, detail string) {
	ws := hasToken(r.Header, "Connection", "upgrade")
	p.metrics.Refused(Refusal{Reason: reason, Status: status, WebSocket: ws})
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "wssproxy: refused",
		slog.String("client", peerAddr(r).String()),
		slog.Int("status", status),
		slog.String("reason", reason),
		slog.String("detail", detail))
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if r.ContentLength != 0 {
		// Or net/http reads up to 256 KiB of the unread body before it
		// sends the refusal, waiting on a client that may never send it.
		h.Set("Connection", "close")
	}
	if mark, ok := r.Context().Value(rpcKey{}).(rpcMark); ok || !ws && isJSONRPC(r) {
		body := jsonrpc.AppendError(nil, mark.id, rpcRefusalCode(reason), "wssgate: "+detail, "")
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "wssgate: %s\n", detail)
}

// isJSONRPC reports whether r says it carries JSON: Content-Type
// application/json (or a +json type). The body is not read: refusals
// happen before the gateway reads it, and reading it would cost what the
// refusal saves. Callers that have read it mark the request with
// rpcRequest instead.
func isJSONRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "application/json-rpc" || len(mt) > 5 && mt[len(mt)-5:] == "+json"
}

// rpcBody marks r as a JSON-RPC request if body, all or the start of it,
// is a JSON object or array (after white space): a call or a batch. A
// single call's refusals carry its id, a batch's null. Callers that read
// the body call it at once, so that any refusal after that is JSON-RPC.
func rpcBody(r *http.Request, body []byte) *http.Request {
	b := jsonrpc.TrimSpace(body)
	switch {
	case len(b) == 0 || b[0] != '{' && b[0] != '[':
		return r
	case b[0] == '{':
		if calls, _, err := jsonrpc.Parse(body, 0, nil); err == nil && len(calls) == 1 {
			return rpcRequest(r, calls[0].ID)
		}
	}
	return rpcRequest(r, nil)
}

// rpcRefusalCode is the JSON-RPC error code of a refusal: -32005 (limit
// exceeded, as the node itself answers) for the gateway's limits, -32603
// (internal error) when the node or the gateway cannot serve, -32600
// (invalid request) for the rest.
func rpcRefusalCode(reason string) int {
	switch reason {
	case RefusalRate, RefusalConnsClient, RefusalConnsTotal, RefusalConnsNode, RefusalBodyTooLarge:
		return jsonrpc.CodeLimitExceeded
	case RefusalNodeDown, RefusalNodeTimeout, RefusalNodeRefused, RefusalShuttingDown:
		return jsonrpc.CodeInternalError
	}
	return jsonrpc.CodeInvalidRequest
}
