package wssproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// clientSub is one subscription of a shared-mode client, under an id of
// the gateway's: a share of a shared subscription (ss), or a subscription
// of its own on one node connection (nc). Guarded by h.mu.
type clientSub struct {
	c   *shareClient
	id  []byte // the client's subscription id, a JSON string
	fam *subFamily

	// Notifications wait in backlog until the client has been sent the
	// subscription id (ready).
	ready   bool
	backlog [][]byte

	ss *sharedSub

	nc      *nodeConn
	nodeRaw []byte // the node's subscription id, raw JSON
	nodeKey string // canonical
	ended   bool
}

// deliver queues a notification for the client, or holds it until the
// client has its subscription id. h.mu is held.
func (cs *clientSub) deliver(msg []byte) {
	if cs.ready {
		cs.c.enqueue(msg)
		return
	}
	cs.backlog = append(cs.backlog, msg)
	if len(cs.backlog) > cs.c.h.o.ClientBacklog {
		cs.backlog = nil
		cs.c.overflow()
	}
}

// makeReady sends the held notifications. h.mu is held.
func (cs *clientSub) makeReady() {
	cs.ready = true
	for _, m := range cs.backlog {
		cs.c.enqueue(m)
	}
	cs.backlog = nil
}

// notify is a node notification of the client's own subscription.
func (cs *clientSub) notify(nc *nodeConn, method string, result []byte) {
	if cs.ended {
		return
	}
	cs.deliver(notification(method, cs.id, result))
	if cs.fam.last != nil && cs.fam.last(result) {
		cs.ended = true
		delete(nc.subs, cs.nodeKey)
		delete(cs.c.subs, canonicalSubID(cs.id))
		cs.c.sess.subEnded(canonicalSubID(cs.id))
	}
}

// nodeLost ends the client's own subscription when its node connection
// drops, with the final event its API defines, or else by closing the
// client.
func (cs *clientSub) nodeLost(nc *nodeConn) {
	if cs.ended {
		return
	}
	var final []byte
	switch {
	case cs.fam.last == nil:
	case strings.HasPrefix(cs.fam.notification, "chainHead_"):
		final = []byte(`{"event":"stop"}`)
	case strings.HasPrefix(cs.fam.notification, "transactionWatch_"):
		final = []byte(`{"event":"dropped","error":"the gateway lost its node connection"}`)
	case cs.fam.notification == "author_extrinsicUpdate":
		final = []byte(`"dropped"`)
	}
	if final != nil {
		cs.deliver(notification(cs.fam.notification, cs.id, final))
	} else {
		// No event says it ended: close the client with 1012, as splice
		// mode does when its node goes away, so that it subscribes again.
		cs.c.closeAfterQueued(&policyClose{websocket.StatusServiceRestart, "node connection lost; reconnect"})
	}
	cs.ended = true
	if cs.c.subs != nil {
		delete(cs.c.subs, canonicalSubID(cs.id))
	}
	cs.c.sess.subEnded(canonicalSubID(cs.id))
}

// endLocked ends the subscription on the client's behalf: it leaves a
// shared one, or unsubscribes its own on the node (unsub) or just forgets
// it. h.mu is held.
func (cs *clientSub) endLocked(unsub bool) {
	if cs.ended {
		return
	}
	cs.ended = true
	if cs.ss != nil {
		cs.ss.leaveLocked(cs)
		return
	}
	if cs.nc == nil || cs.nc.dead {
		return
	}
	delete(cs.nc.subs, cs.nodeKey)
	if unsub {
		cs.c.h.submitLocked(&job{method: cs.fam.unsubscribe[0], params: jsonrpc.AppendBatch(nil, cs.nodeRaw),
			pin: cs.nc, done: func(answer) {}})
	}
}

// openOwnLocked opens a subscription of the client's own on the node
// (one that is not shared, such as a watched extrinsic or a follow).
func (c *shareClient) openOwnLocked(f *subFamily, method string, params, id []byte, col *collector) {
	j := &job{key: c.key, owner: c, method: method, params: params}
	j.done = func(a answer) {
		if a.lost || a.call.HasError {
			c.sess.subFailed()
			col.doneLocked(replyFor(a, id), nil)
			return
		}
		nodeKey := canonicalSubID(a.call.Result)
		if nodeKey == "" {
			c.sess.subFailed()
			col.doneLocked(replyFor(a, id), nil)
			return
		}
		cs := &clientSub{c: c, id: newSubID(), fam: f, nc: a.nc, nodeRaw: bytes.Clone(a.call.Result), nodeKey: nodeKey}
		if c.closed {
			c.sess.subFailed()
			cs.endLocked(true)
			return
		}
		a.nc.subs[nodeKey] = cs
		c.subs[canonicalSubID(cs.id)] = cs
		c.sess.subOpened(canonicalSubID(cs.id), f)
		col.doneLocked(subscribed(id, cs.id), cs.makeReady)
	}
	if !c.submitLocked(j, id, col) {
		c.sess.subFailed()
	}
}

// unsubscribeLocked ends the client's subscription cs at its request.
func (c *shareClient) unsubscribeLocked(cs *clientSub, method string, params, raw, id []byte, col *collector) {
	delete(c.subs, canonicalSubID(cs.id))
	c.sess.subEnded(canonicalSubID(cs.id))
	if cs.ss != nil || cs.nc == nil || cs.nc.dead || cs.ended {
		cs.endLocked(false)
		result := "true"
		if strings.Contains(method, "_v1_") || strings.Contains(method, "_unstable_") {
			result = "null" // the new API's unfollow and unwatch return null
		}
		col.doneLocked(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":%s}`, id, result), nil)
		return
	}
	cs.endLocked(false) // stop its notifications now
	j := c.callJob(method, replaceValue(params, raw, cs.nodeRaw), id, col)
	j.pin = cs.nc
	c.submitLocked(j, id, col)
}

// shareKey says whether a subscribe call of family f can be shared, and
// under which key; method and params are what the gateway sends the node.
// The key normalises parameters, so the same storage keys in another
// order, case or spacing make the same subscription.
func shareKey(f *subFamily, method string, params []byte) (key, m string, p []byte, ok bool) {
	if !f.shared {
		return "", "", nil, false
	}
	m = f.subscribe[0]
	if f.notification != "state_storage" {
		if !jsonrpc.IsEmpty(params) {
			return "", "", nil, false
		}
		return m, m, nil, true
	}
	raw, ok := jsonrpc.Param(params, 0, "keys")
	if !ok || bytes.Equal(jsonrpc.TrimSpace(raw), []byte("null")) {
		if !jsonrpc.IsEmpty(params) && ok {
			return "", "", nil, false
		}
		return m + "*", m, nil, true // every change: the same for everyone too
	}
	var keys []string
	if json.Unmarshal(raw, &keys) != nil || len(keys) == 0 {
		return "", "", nil, false
	}
	for i, k := range keys {
		keys[i] = strings.ToLower(k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b, _ := json.Marshal([][]string{keys})
	return m + string(b), m, b, true
}

// countSubscription counts a shared-mode subscribe call against
// Options.MaxSubscriptions until the gateway answers it (see subOpened and
// subFailed). It returns why c is refused, or "".
func (s *session) countSubscription(c *jsonrpc.Call) string {
	if subscribeOf(c.Method) == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.subs)+s.opening >= s.p.opts.MaxSubscriptions {
		s.p.metrics.Denied("subscriptions")
		return fmt.Sprintf("limit exceeded: at most %d subscriptions per connection", s.p.opts.MaxSubscriptions)
	}
	s.opening++
	return ""
}

// subOpened records an answered subscribe call under the client's id.
func (s *session) subOpened(id string, f *subFamily) {
	if s.p.opts.MaxSubscriptions == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opening--
	if s.subs == nil {
		s.subs = map[string]*subFamily{}
	}
	s.subs[id] = f
}

// subFailed records a subscribe call that opened nothing.
func (s *session) subFailed() {
	if s.p.opts.MaxSubscriptions == 0 {
		return
	}
	s.mu.Lock()
	s.opening--
	s.mu.Unlock()
}

// subEnded forgets a subscription.
func (s *session) subEnded(id string) {
	s.mu.Lock()
	delete(s.subs, id)
	s.mu.Unlock()
}
