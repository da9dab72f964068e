package wssproxy

import (
	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// nodeMessage sees a whole node message while the session watches them
// (see watchNode) and returns what to send the client: msg itself, or msg
// with the client's ids restored in the replies to tracked calls and the
// gateway's refusals merged into a batch reply. It keeps the subscription
// count: a subscription counts from the node's reply that opens it until an
// unsubscribe of it is answered without an error, or until the node sends
// its last notification (a final transaction status, a "stop" event).
func (s *session) nodeMessage(msg []byte) []byte {
	if !s.watchNode() {
		return msg
	}
	calls, batch, err := jsonrpc.Parse(msg, maxBatch, nil)
	if err != nil {
		return msg
	}
	var edits []jsonrpc.IDEdit
	var merges [][]byte
	s.mu.Lock()
	for i := range calls {
		c := &calls[i]
		switch {
		case c.IsResponse && c.ID != nil:
			n, ok := s.ownID(c.ID)
			t := s.pending[n]
			if !ok || t == nil {
				continue
			}
			s.forgetLocked(t)
			s.settleLocked(t, c)
			edits = append(edits, jsonrpc.IDEdit{At: c.IDAt, End: c.IDAt + len(c.ID), ID: t.clientID})
			if t.merge != nil && batch {
				merges = append(merges, t.merge)
			}
		case c.HasMethod && !c.HasID && s.ending > 0:
			s.notificationLocked(c)
		}
	}
	s.updateWatch()
	s.mu.Unlock()
	if edits == nil {
		return msg
	}
	out := jsonrpc.ReplaceIDs(make([]byte, 0, len(msg)+64), msg, edits)
	if merges != nil {
		if merged, ok := jsonrpc.MergeBatch(nil, out, merges...); ok {
			out = merged
		}
	}
	return out
}

// settleLocked applies the node's reply c to tracked call t. s.mu is held.
func (s *session) settleLocked(t *tracked, c *jsonrpc.Call) {
	switch {
	case t.opens != nil:
		s.opening--
		if c.HasError {
			return
		}
		id := canonicalSubID(c.Result)
		if id == "" {
			return
		}
		if s.subs == nil {
			s.subs = make(map[string]*subFamily)
		}
		if _, dup := s.subs[id]; !dup && t.opens.last != nil {
			s.ending++
		}
		s.subs[id] = t.opens
	case t.closes != nil:
		// Any answer but an error ends it: true, or null from some
		// servers, or false when the node no longer holds it (it ended
		// it, and the gateway missed the notification that said so).
		if f, ok := s.subs[t.subID]; ok && !c.HasError && f.endedBy(t.closes) {
			s.dropSubLocked(t.subID, f)
		}
	}
}

// notificationLocked ends the subscription a node notification says is
// over. s.mu is held.
func (s *session) notificationLocked(c *jsonrpc.Call) {
	f := notifyFamily[c.Method]
	if f == nil {
		return
	}
	raw, _ := jsonrpc.Member(c.Params, "subscription")
	id := canonicalSubID(raw)
	if g, ok := s.subs[id]; !ok || g != f {
		return
	}
	if result, ok := jsonrpc.Member(c.Params, "result"); ok && f.last(result) {
		s.dropSubLocked(id, f)
	}
}

func (s *session) dropSubLocked(id string, f *subFamily) {
	delete(s.subs, id)
	if f.last != nil {
		s.ending--
	}
}

// subscriptions returns the number of subscriptions the session counts:
// live ones and those awaiting the node's reply.
func (s *session) subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs) + s.opening
}
