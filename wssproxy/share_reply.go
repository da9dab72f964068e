package wssproxy

import (
	"bytes"
	"crypto/rand"
	"strings"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// What shared mode sends a client: the node's replies under the client's
// ids, subscription ids and notifications of the gateway's, and the
// collector that joins the answers to one message.

// replyFor is the node's answer a for the client's id, or an error if the
// node connection was lost before it answered.
func replyFor(a answer, id []byte) []byte {
	if a.lost {
		return jsonrpc.AppendError(nil, id, jsonrpc.CodeInternalError,
			"node connection lost before the node answered; the call may have been executed", "")
	}
	c := a.call
	el := a.msg[c.Start:c.End]
	at := c.IDAt - c.Start
	return jsonrpc.ReplaceIDs(make([]byte, 0, len(el)+len(id)), el,
		[]jsonrpc.IDEdit{{At: at, End: at + len(c.ID), ID: id}})
}

// readOnly reports whether a call only reads, so that it may be sent again
// when the node connection carrying it drops.
func readOnly(method string) bool {
	for _, p := range [...]string{"chain_", "state_", "system_", "rpc_", "childstate_", "archive_", "chainSpec_", "payment_query"} {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// replaceValue returns params with the value raw (a slice of params, as
// jsonrpc.Param returns it) replaced by with.
func replaceValue(params, raw, with []byte) []byte {
	off := cap(params) - cap(raw)
	if off < 0 || off+len(raw) > len(params) || !bytes.Equal(params[off:off+len(raw)], raw) {
		return params
	}
	out := make([]byte, 0, len(params)-len(raw)+len(with))
	out = append(out, params[:off]...)
	out = append(out, with...)
	return append(out, params[off+len(raw):]...)
}

// newSubID returns a fresh subscription id for the client, as a JSON
// string of 16 characters like the node's own.
func newSubID() []byte {
	return []byte(`"` + rand.Text()[:16] + `"`)
}

// subscribed is the reply to a subscribe call: the client's own id.
func subscribed(id, subID []byte) []byte {
	b := make([]byte, 0, 40+len(id)+len(subID))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, subID...)
	return append(b, '}')
}

// notification is a subscription notification for the client.
func notification(method string, subID, result []byte) []byte {
	b := make([]byte, 0, 64+len(method)+len(subID)+len(result))
	b = append(b, `{"jsonrpc":"2.0","method":`...)
	b = jsonrpc.AppendString(b, method)
	b = append(b, `,"params":{"subscription":`...)
	b = append(b, subID...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, "}}"...)
}

// collector gathers the answers to one client message: one reply, or the
// batch of them. Guarded by h.mu.
type collector struct {
	c     *shareClient
	batch bool
	left  int
	parts [][]byte
	after []func()
}

// doneLocked records one call's answer; after, if not nil, runs once the
// message carrying it is queued (to release notifications held back until
// the client has its subscription id).
func (col *collector) doneLocked(elem []byte, after func()) {
	col.c.outstanding--
	col.parts = append(col.parts, elem)
	if after != nil {
		col.after = append(col.after, after)
	}
	col.left--
	if col.left == 0 {
		col.flushLocked()
	}
}

func (col *collector) flushLocked() {
	switch {
	case len(col.parts) == 0:
	case col.batch:
		col.c.enqueue(jsonrpc.AppendBatch(nil, col.parts...))
	default:
		col.c.enqueue(col.parts[0])
	}
	for _, f := range col.after {
		f()
	}
	col.parts, col.after = nil, nil
}
