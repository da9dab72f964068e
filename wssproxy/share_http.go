package wssproxy

import (
	"bytes"
	"net/http"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// serveSharedPost answers the calls of a JSON-RPC POST that the policy let
// through over the hub's node connections, with the cache, in the same
// fair queue as the WebSocket clients of the same key. It reports false,
// having done nothing, for a body with subscription calls (the node
// refuses those over HTTP itself), with no call the node answers, or while
// no node connection is up: the request is then forwarded as in splice
// mode.
func (p *Proxy) serveSharedPost(w http.ResponseWriter, r *http.Request, s *session, calls []jsonrpc.Call, batch bool) bool {
	h := p.hub
	var routed []*jsonrpc.Call
	for _, i := range s.keep {
		cl := &calls[i]
		if subscribeOf(cl.Method) != nil || unsubscribeOf(cl.Method) != nil {
			return false
		}
		if answeredID(cl) && cl.HasMethod && !cl.IsResponse {
			routed = append(routed, cl)
		}
	}
	if len(routed) == 0 {
		return false // nothing the node answers
	}
	c := &shareClient{h: h, key: p.opts.Key(r), sess: s, subs: map[string]*clientSub{}, wake: make(chan struct{}, 1)}
	col := &collector{c: c, batch: batch, left: len(routed)}
	for _, e := range s.errs {
		col.parts = append(col.parts, bytes.Clone(e))
	}
	h.mu.Lock()
	if !h.liveLocked() {
		h.mu.Unlock()
		return false
	}
	for _, cl := range routed {
		c.routeLocked(cl.Method, bytes.Clone(cl.Params), bytes.Clone(cl.ID), col)
	}
	h.mu.Unlock()
	select {
	case <-c.wake:
	case <-r.Context().Done():
		h.mu.Lock()
		c.closed = true
		h.sched.drop(c.key, c)
		h.mu.Unlock()
		w.WriteHeader(499) // the client went away: no one to answer
		return true
	}
	c.mu.Lock()
	var reply []byte
	if len(c.q) > 0 {
		reply = c.q[0]
	}
	c.mu.Unlock()
	p.writeRPC(w, reply)
	return true
}
