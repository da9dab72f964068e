package wssproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// In shared mode the health checks' head subscriptions (see watchHeads in
// heads.go) ride on the hub's node connections instead of a connection of
// their own, so the node sees ConnsPerNode connections in all.

// watchHeads keeps a new and a finalized heads subscription on one of the
// hub's connections to node b, feeding b's health, until ctx ends. After
// a failure the health checks poll the heads until a connection to b is
// up again, at most every HealthInterval.
func (h *shareHub) watchHeads(ctx context.Context, b *backend) {
	p := h.p
	for {
		nc := h.connTo(ctx, b)
		if nc == nil {
			return
		}
		o := &headObserver{h: h, b: b, nc: nc, done: make(chan error, 1)}
		h.mu.Lock()
		if !nc.dead {
			o.openLocked()
		}
		h.mu.Unlock()
		b.health.setResubscribe(func() { o.fail(errMissedHeads) })
		var err error
		select {
		case err = <-o.done:
		case <-ctx.Done():
		}
		b.health.setResubscribe(nil)
		lost := b.health.setSubscribed(false)
		h.mu.Lock()
		o.closeLocked()
		h.mu.Unlock()
		if ctx.Err() != nil || !p.headsEnded(ctx, b, err, lost) {
			return
		}
	}
}

// connTo waits for a live hub connection to b, or returns nil when ctx
// ends.
func (h *shareHub) connTo(ctx context.Context, b *backend) *nodeConn {
	for {
		h.mu.Lock()
		up := h.up
		for _, nc := range h.conns {
			if nc.b == b {
				h.mu.Unlock()
				return nc
			}
		}
		h.mu.Unlock()
		select {
		case <-up:
		case <-ctx.Done():
			return nil
		}
	}
}

// headObserver is the health checks' pair of head subscriptions on one
// hub connection. Guarded by h.mu.
type headObserver struct {
	h         *shareHub
	b         *backend
	nc        *nodeConn
	raws      [2][]byte // the node's subscription ids
	keys      [2]string
	confirmed int
	closed    bool
	done      chan error // receives why the subscriptions ended

	latest [2][]byte     // the last head of each
	shared [2]*sharedSub // a shared subscription riding on each, or nil
}

var (
	observerMethods      = [2]string{"chain_subscribeNewHeads", "chain_subscribeFinalizedHeads"}
	observerUnsubscribes = [2]string{"chain_unsubscribeNewHeads", "chain_unsubscribeFinalizedHeads"}
)

func (o *headObserver) openLocked() {
	for i, m := range observerMethods {
		o.h.submitLocked(&job{method: m, pin: o.nc, done: func(a answer) { o.opened(i, a) }})
	}
}

func (o *headObserver) opened(i int, a answer) {
	if a.lost {
		o.fail(errors.New("node connection lost"))
		return
	}
	key := ""
	if !a.call.HasError {
		key = canonicalSubID(a.call.Result)
	}
	if key == "" {
		o.fail(fmt.Errorf("subscribing to heads: %.200s", a.msg))
		return
	}
	o.raws[i], o.keys[i] = bytes.Clone(a.call.Result), key
	if o.closed {
		o.unsubscribeLocked(i)
		return
	}
	o.nc.subs[key] = o
	if o.h.observers == nil {
		o.h.observers = map[*headObserver]struct{}{}
	}
	o.h.observers[o] = struct{}{}
	if o.confirmed++; o.confirmed == len(observerMethods) && o.b.health.setSubscribed(true) {
		o.h.p.log.LogAttrs(context.Background(), slog.LevelDebug, "wssproxy: following heads",
			slog.String("upstream", o.b.host))
	}
}

// notify records a head, as followHeads does.
func (o *headObserver) notify(nc *nodeConn, method string, result []byte) {
	n, ok := headNumber(result)
	if !ok {
		o.fail(fmt.Errorf("%s: no block number", method))
		return
	}
	i := 0
	if method == "chain_finalizedHead" {
		i = 1
		o.b.health.observeFinalized(n)
	} else if d, ok := o.b.health.observeBest(n, o.h.p.opts.now()); ok {
		o.h.p.blockTimes.add(d)
	}
	o.latest[i] = bytes.Clone(result)
	if ss := o.shared[i]; ss != nil {
		ss.notify(nc, method, result)
	}
}

func (o *headObserver) nodeLost(*nodeConn) {
	o.fail(errors.New("node connection lost"))
	o.detachLocked()
}

// detachLocked moves the shared subscriptions riding on o elsewhere.
func (o *headObserver) detachLocked() {
	delete(o.h.observers, o)
	for i, ss := range o.shared {
		if ss != nil {
			o.shared[i] = nil
			ss.nodeLost(o.nc)
		}
	}
}

// observerFor returns a live head observer whose subscription i a shared
// subscription can ride on, or nil. h.mu is held.
func (h *shareHub) observerFor(i int) *headObserver {
	for o := range h.observers {
		if !o.closed && !o.nc.dead && o.raws[i] != nil && o.shared[i] == nil {
			return o
		}
	}
	return nil
}

func (o *headObserver) fail(err error) {
	select {
	case o.done <- err:
	default:
	}
}

// closeLocked ends the subscriptions that were opened.
func (o *headObserver) closeLocked() {
	o.closed = true
	o.detachLocked()
	for i := range observerMethods {
		if o.raws[i] != nil {
			o.unsubscribeLocked(i)
		}
	}
}

func (o *headObserver) unsubscribeLocked(i int) {
	if o.nc.dead || o.raws[i] == nil {
		return
	}
	if o.nc.subs[o.keys[i]] == nodeSink(o) {
		delete(o.nc.subs, o.keys[i])
	}
	o.h.submitLocked(&job{method: observerUnsubscribes[i], params: jsonrpc.AppendBatch(nil, o.raws[i]), pin: o.nc, done: func(answer) {}})
	o.raws[i] = nil
}
