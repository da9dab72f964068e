package wssproxy

import (
	"errors"
	"fmt"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// job is one call to the node: a client's, or the gateway's own (opening
// and closing shared subscriptions, filling in missed heads).
type job struct {
	key      string    // client key, for fair queueing; "" for the gateway's
	owner    any       // the client it is for, to drop its queued calls on close
	method   string    // for the node's request
	params   []byte    // raw JSON, owned by the job
	id       uint64    // gateway id, set when sent
	pin      *nodeConn // must go on this connection (its subscription's)
	readOnly bool      // may be retried once on another connection
	retried  bool
	// done is called once with the node's answer, or lost when the
	// connection dropped before it. h.mu is held; it must not block.
	done func(answer)
}

// answer is the node's reply to a job, or its loss.
type answer struct {
	nc   *nodeConn
	msg  []byte // the whole reply message
	call *jsonrpc.Call
	lost bool
}

// request is the job's JSON-RPC request under gateway id n.
func (j *job) request(n uint64) []byte {
	b := make([]byte, 0, 48+len(j.method)+len(j.params))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = fmt.Appendf(b, "%d", n)
	b = append(b, `,"method":`...)
	b = jsonrpc.AppendString(b, j.method)
	if j.params != nil {
		b = append(b, `,"params":`...)
		b = append(b, j.params...)
	}
	return append(b, '}')
}

var (
	errQueueFull       = errors.New("limit exceeded: the gateway's queue of calls to the node is full; retry later")
	errClientQueueFull = errors.New("limit exceeded: too many calls from this client waiting for the node; retry later")
)

// scheduler holds the calls waiting for a node connection: the gateway's
// own first, then clients' round robin by key, so a client with a long
// queue waits behind its own calls only. Guarded by shareHub.mu.
type scheduler struct {
	limit, perKey int
	total         int
	urgent        []*job
	queues        map[string][]*job
	ring          []string // keys with queued calls, in turn order
	turn          int
}

func (s *scheduler) init(limit, perKey int) {
	s.limit, s.perKey = limit, perKey
	s.queues = map[string][]*job{}
}

// push queues j, or says why it cannot.
func (s *scheduler) push(j *job) error {
	if j.owner == nil {
		s.urgent = append(s.urgent, j)
		return nil
	}
	q := s.queues[j.key]
	switch {
	case s.total >= s.limit:
		return errQueueFull
	case len(q) >= s.perKey:
		return errClientQueueFull
	}
	if len(q) == 0 {
		s.ring = append(s.ring, j.key)
	}
	s.queues[j.key] = append(q, j)
	s.total++
	return nil
}

// pushFront queues j (a retried call) before all others.
func (s *scheduler) pushFront(j *job) {
	s.urgent = append([]*job{j}, s.urgent...)
}

// pop returns the next call to send, or nil.
func (s *scheduler) pop() *job {
	if len(s.urgent) > 0 {
		j := s.urgent[0]
		s.urgent[0] = nil
		s.urgent = s.urgent[1:]
		return j
	}
	if len(s.ring) == 0 {
		return nil
	}
	s.turn %= len(s.ring)
	key := s.ring[s.turn]
	q := s.queues[key]
	j := q[0]
	q[0] = nil
	s.total--
	if len(q) == 1 {
		delete(s.queues, key)
		s.ring = append(s.ring[:s.turn], s.ring[s.turn+1:]...)
	} else {
		s.queues[key] = q[1:]
		s.turn++
	}
	return j
}

// drop removes owner's queued calls and returns them.
func (s *scheduler) drop(key string, owner any) []*job {
	q := s.queues[key]
	var out []*job
	kept := q[:0]
	for _, j := range q {
		if j.owner == owner {
			out = append(out, j)
			s.total--
		} else {
			kept = append(kept, j)
		}
	}
	clear(q[len(kept):])
	if len(kept) > 0 {
		s.queues[key] = kept
		return out
	}
	delete(s.queues, key)
	for i, k := range s.ring {
		if k == key {
			s.ring = append(s.ring[:i], s.ring[i+1:]...)
			if s.turn > i {
				s.turn--
			}
			break
		}
	}
	return out
}

// submitLocked sends j to the node now if a connection has room, or
// queues it. h.mu is held.
func (h *shareHub) submitLocked(j *job) error {
	if j.pin != nil {
		if j.pin.dead {
			j.done(answer{nc: j.pin, lost: true})
			return nil
		}
		j.pin.waiting = append(j.pin.waiting, j)
		h.dispatchLocked()
		return nil
	}
	if err := h.sched.push(j); err != nil {
		return err
	}
	h.dispatchLocked()
	return nil
}

// dispatchLocked sends waiting calls while connections have room: each
// connection's pinned calls first, then the queue's, each to the least
// loaded connection. h.mu is held.
func (h *shareHub) dispatchLocked() {
	for _, nc := range h.conns {
		for len(nc.waiting) > 0 && nc.inflight < h.o.InFlight {
			j := nc.waiting[0]
			nc.waiting[0] = nil
			nc.waiting = nc.waiting[1:]
			h.sendLocked(nc, j)
		}
	}
	for {
		var best *nodeConn
		for _, nc := range h.conns {
			if nc.inflight < h.o.InFlight && (best == nil || better(nc, best)) {
				best = nc
			}
		}
		if best == nil {
			return
		}
		j := h.sched.pop()
		if j == nil {
			return
		}
		h.sendLocked(best, j)
	}
}

func (h *shareHub) sendLocked(nc *nodeConn, j *job) {
	j.id = h.nextID.Add(1)
	nc.pending[j.id] = j
	nc.inflight++
	nc.out <- j.request(j.id) // never blocks: out has room for InFlight
}

// better reports whether a is a better connection for the next call than
// b: a healthy node first (see Options.HealthInterval), then fewer calls
// in flight.
func better(a, b *nodeConn) bool {
	if ha, hb := a.b.healthy.Load(), b.b.healthy.Load(); ha != hb {
		return ha
	}
	return a.inflight < b.inflight
}
