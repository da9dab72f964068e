package wssproxy

import (
	"bytes"
	"strconv"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// maxFill bounds the heads fetched to fill the gap when a shared head
// subscription moves to another node connection.
const maxFill = 256

// sharedSub is one node subscription carrying the notifications of many
// clients: one per distinct family and parameters (the sharing key). The
// first client opens it, the last to leave ends it on the node, and a
// client that joins meanwhile waits for the one open call rather than
// making another. Guarded by h.mu.
type sharedSub struct {
	h      *shareHub
	key    string
	fam    *subFamily
	method string
	params []byte

	nc      *nodeConn // while live
	nodeRaw []byte
	nodeKey string
	live    bool
	closed  bool
	moved   bool // reopened after its node connection dropped

	// obs is the health checks' head subscription this one rides on, at
	// obsIdx, instead of a node subscription of its own.
	obs    *headObserver
	obsIdx int

	members map[*clientSub]struct{}
	waiting []joinWait // joined while it was opening: to be answered

	notifyMethod string
	latest       []byte // the last notification's result

	// Filling the gap after a move: notifications held until the missing
	// heads are fetched.
	filling bool
	held    [][]byte
	fill    [][]byte // fetched headers, newest first
}

type joinWait struct {
	cs  *clientSub
	id  []byte
	col *collector
}

// joinSharedLocked gives client c a share of the subscription key, opening
// it on the node if it is the first. h.mu is held.
func (h *shareHub) joinSharedLocked(c *shareClient, f *subFamily, key, method string, params, id []byte, col *collector) {
	ss := h.shared[key]
	fresh := ss == nil
	if fresh {
		ss = &sharedSub{h: h, key: key, fam: f, method: method, params: params,
			members: map[*clientSub]struct{}{}, notifyMethod: f.notification}
		h.shared[key] = ss
	}
	cs := &clientSub{c: c, id: newSubID(), fam: f, ss: ss}
	ss.members[cs] = struct{}{}
	c.subs[canonicalSubID(cs.id)] = cs
	switch {
	case fresh:
		ss.waiting = append(ss.waiting, joinWait{cs, id, col})
		ss.openLocked() // may answer at once, riding on the health checks'
	case !ss.live:
		ss.waiting = append(ss.waiting, joinWait{cs, id, col})
	default:
		ss.answerLocked(joinWait{cs, id, col})
	}
}

// answerLocked sends a joining client its subscription id, then the latest
// value at once, as the node would.
func (ss *sharedSub) answerLocked(w joinWait) {
	w.cs.c.sess.subOpened(canonicalSubID(w.cs.id), ss.fam)
	if ss.latest != nil {
		w.cs.backlog = append(w.cs.backlog, notification(ss.notifyMethod, w.cs.id, ss.latest))
	}
	w.col.doneLocked(subscribed(w.id, w.cs.id), w.cs.makeReady)
}

func (ss *sharedSub) openLocked() {
	for i, m := range observerMethods {
		if ss.key == m {
			if o := ss.h.observerFor(i); o != nil {
				ss.attachLocked(o, i)
				return
			}
		}
	}
	ss.h.submitLocked(&job{method: ss.method, params: ss.params, done: ss.opened})
}

// attachLocked makes ss ride on the health checks' subscription i of o:
// the node then has one new heads (or finalized heads) subscription, not
// two.
func (ss *sharedSub) attachLocked(o *headObserver, i int) {
	ss.obs, ss.obsIdx = o, i
	o.shared[i] = ss
	ss.nc, ss.nodeRaw, ss.nodeKey = o.nc, o.raws[i], o.keys[i]
	if ss.latest == nil && o.latest[i] != nil {
		ss.latest = o.latest[i]
	}
	ss.liveLocked()
}

// opened takes the node's answer to the subscribe call.
func (ss *sharedSub) opened(a answer) {
	if a.lost {
		if len(ss.members) > 0 {
			ss.openLocked()
		} else {
			ss.forgetLocked()
		}
		return
	}
	nodeKey := ""
	if !a.call.HasError {
		nodeKey = canonicalSubID(a.call.Result)
	}
	if nodeKey == "" { // the node refused: so are the clients that waited
		for _, w := range ss.waiting {
			delete(ss.members, w.cs)
			delete(w.cs.c.subs, canonicalSubID(w.cs.id))
			w.cs.ended = true
			w.cs.c.sess.subFailed()
			w.col.doneLocked(replyFor(a, w.id), nil)
		}
		ss.waiting = nil
		ss.forgetLocked()
		// Members from before a move cannot be told in the stream that
		// their subscription is gone: they are closed with 1012, as when
		// a spliced node goes away, so that they reconnect.
		for cs := range ss.members {
			cs.ended = true
			cs.c.closeAfterQueued(&policyClose{websocket.StatusServiceRestart, "node subscription lost; reconnect"})
		}
		clear(ss.members)
		return
	}
	ss.nc, ss.nodeRaw, ss.nodeKey = a.nc, bytes.Clone(a.call.Result), nodeKey
	a.nc.subs[nodeKey] = ss
	ss.liveLocked()
}

// liveLocked answers the clients that waited for the node subscription.
func (ss *sharedSub) liveLocked() {
	ss.live = true
	if ss.moved && isHeads(ss.fam) && ss.latest != nil {
		ss.filling = true
	}
	for _, w := range ss.waiting {
		if !w.cs.ended {
			ss.answerLocked(w)
		}
	}
	ss.waiting = nil
	if len(ss.members) == 0 {
		ss.closeLocked()
	}
}

// notify fans a node notification out to every member.
func (ss *sharedSub) notify(nc *nodeConn, method string, result []byte) {
	if nc != ss.nc || ss.closed {
		return
	}
	ss.notifyMethod = method
	if ss.filling {
		ss.held = append(ss.held, bytes.Clone(result))
		if len(ss.held) == 1 {
			ss.startFillLocked(ss.held[0])
		}
		return
	}
	ss.broadcastLocked(result)
}

func (ss *sharedSub) broadcastLocked(result []byte) {
	if ss.moved && bytes.Equal(result, ss.latest) {
		return // a repeat from the new node connection
	}
	ss.latest = bytes.Clone(result)
	if ss.fam.notification == "state_runtimeVersion" {
		if k := runtimeKey(result); k != "" {
			ss.h.runtime = k
		}
	}
	for cs := range ss.members {
		if !cs.ended {
			cs.deliver(notification(ss.notifyMethod, cs.id, result))
		}
	}
}

// leaveLocked takes cs out; the last member ends the node subscription.
func (ss *sharedSub) leaveLocked(cs *clientSub) {
	delete(ss.members, cs)
	for i, w := range ss.waiting {
		if w.cs == cs {
			ss.waiting = append(ss.waiting[:i], ss.waiting[i+1:]...)
			cs.c.sess.subFailed()
			break
		}
	}
	if len(ss.members) == 0 && ss.live {
		ss.closeLocked()
	}
}

// closeLocked ends the node subscription.
func (ss *sharedSub) closeLocked() {
	ss.forgetLocked()
	ss.closed = true
	if o := ss.obs; o != nil { // the health checks' own: it stays
		if o.shared[ss.obsIdx] == ss {
			o.shared[ss.obsIdx] = nil
		}
		ss.obs = nil
		return
	}
	if ss.nc == nil || ss.nc.dead {
		return
	}
	delete(ss.nc.subs, ss.nodeKey)
	ss.h.submitLocked(&job{method: ss.fam.unsubscribe[0], params: jsonrpc.AppendBatch(nil, ss.nodeRaw),
		pin: ss.nc, done: func(answer) {}})
}

// forgetLocked takes ss out of the registry, so the next client opens a
// new one.
func (ss *sharedSub) forgetLocked() {
	if ss.h.shared[ss.key] == ss {
		delete(ss.h.shared, ss.key)
	}
}

// nodeLost reopens the subscription on another node connection: its
// members keep their ids and see no change but, for heads, a repeat.
func (ss *sharedSub) nodeLost(nc *nodeConn) {
	if nc != ss.nc {
		return
	}
	ss.live, ss.nc, ss.filling, ss.held, ss.fill, ss.obs = false, nil, false, nil, nil, nil
	if len(ss.members) == 0 || ss.closed {
		ss.forgetLocked()
		return
	}
	ss.moved = true
	ss.openLocked()
}

func isHeads(f *subFamily) bool {
	switch f.notification {
	case "chain_newHead", "chain_finalizedHead", "chain_allHead":
		return true
	}
	return false
}

// headNumber reads a header's number, or false.
func headNumber(header []byte) (uint64, bool) {
	raw, ok := jsonrpc.Member(header, "number")
	if !ok {
		return 0, false
	}
	s, ok := jsonrpc.Unquote(raw)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 0, 64)
	return n, err == nil
}

// startFillLocked begins fetching the heads between the last one the
// members saw and first, the first head from the new node connection, by
// walking parent hashes back.
func (ss *sharedSub) startFillLocked(first []byte) {
	last, ok1 := headNumber(ss.latest)
	n, ok2 := headNumber(first)
	if !ok1 || !ok2 || n <= last+1 || n-last > maxFill {
		ss.endFillLocked()
		return
	}
	ss.fetchParentLocked(first, last)
}

func (ss *sharedSub) fetchParentLocked(child []byte, last uint64) {
	parent, ok := jsonrpc.Member(child, "parentHash")
	if !ok {
		ss.endFillLocked()
		return
	}
	nc := ss.nc
	ss.h.submitLocked(&job{method: "chain_getHeader", params: jsonrpc.AppendBatch(nil, parent), readOnly: true,
		done: func(a answer) {
			if ss.nc != nc || !ss.filling {
				return // moved again meanwhile
			}
			if a.lost || a.call.HasError || a.call.Result == nil {
				ss.endFillLocked()
				return
			}
			hdr := bytes.Clone(a.call.Result)
			n, ok := headNumber(hdr)
			if !ok || n <= last {
				ss.endFillLocked()
				return
			}
			ss.fill = append(ss.fill, hdr)
			if n == last+1 {
				ss.endFillLocked()
				return
			}
			ss.fetchParentLocked(hdr, last)
		}})
}

// endFillLocked delivers the fetched heads, oldest first, then what the
// node sent meanwhile.
func (ss *sharedSub) endFillLocked() {
	ss.filling = false
	for i := len(ss.fill) - 1; i >= 0; i-- {
		ss.broadcastLocked(ss.fill[i])
	}
	for _, r := range ss.held {
		ss.broadcastLocked(r)
	}
	ss.fill, ss.held = nil, nil
}
