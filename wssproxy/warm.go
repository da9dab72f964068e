package wssproxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// This file holds the node connections dialed ahead of demand
// (Options.NodeWarmConns): a client whose request a warm connection fits
// waits only for its own handshake, not for the node's.

// Bounds of the warm connections.
const (
	// warmRetryMin and warmRetryMax bound the wait after a failed warm
	// dial; it doubles with each failure in a row.
	warmRetryMin = time.Second
	warmRetryMax = 30 * time.Second
	// warmEarlyLimit bounds what a node may send on a warm connection
	// before a client takes it (a ping, say): past it the connection is
	// dropped.
	warmEarlyLimit = 1 << 10
)

// warmPool keeps up to n upgraded connections to each healthy node. One
// goroutine, the filler, owns it: it dials, ages connections out and drops
// them when their node turns unhealthy, and on Close or Shutdown closes
// them and waits for its dials and watchers.
type warmPool struct {
	p      *Proxy
	n      int
	maxAge time.Duration
	header []byte // the upgrade request's header lines: Options.UpstreamHeader and its User-Agent

	ctx    context.Context // ends the dials when the proxy closes
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: a connection was taken or lost, or health changed
	closed atomic.Bool
	wg     sync.WaitGroup // dials and watchers
}

// warmConns is one node's warm connections, guarded by mu.
type warmConns struct {
	mu       sync.Mutex
	idle     []*warmConn // oldest first
	dialing  int
	failures int       // failed dials in a row
	retryAt  time.Time // no dial before, after a failure
}

// warmConn is one warm connection. Until a client takes it, a watcher
// reads it, so that a node that closes it is noticed at once.
type warmConn struct {
	s     *socket
	born  time.Time
	taken bool          // a client or the filler took it from idle; guarded by its warmConns.mu
	done  chan struct{} // closed when the watcher returns
	err   error         // why the watcher's read ended; set before done closes
}

// newWarmPool starts the filler of p's warm connections, if
// Options.NodeWarmConns asks for them. It runs until p closes.
func newWarmPool(p *Proxy) *warmPool {
	if p.opts.NodeWarmConns == 0 {
		return nil
	}
	w := &warmPool{p: p, n: p.opts.NodeWarmConns, kick: make(chan struct{}, 1)}
	w.maxAge = p.opts.PingInterval
	if w.maxAge <= 0 {
		w.maxAge = DefaultPingInterval
	}
	if p.upstreamUA != "" {
		w.header = appendHeader(w.header, "User-Agent", p.upstreamUA)
	}
	if p.upstreamOrigin != "" {
		w.header = appendHeader(w.header, "Origin", p.upstreamOrigin)
	}
	w.header = append(w.header, p.upstreamLines...)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	p.healthDone.Add(1)
	go w.run()
	return w
}

// warmFits reports whether a warm connection can serve client request r:
// one that asks for the node's own path, with no query, subprotocol, or
// Origin to forward.
func (p *Proxy) warmFits(r *http.Request) bool {
	return p.warm != nil && (r.URL.Path == "" || r.URL.Path == "/") && r.URL.RawQuery == "" &&
		len(r.Header["Sec-Websocket-Protocol"]) == 0 && (!p.opts.ForwardOrigin || len(r.Header["Origin"]) == 0)
}

// poke tells the filler to look again.
func (w *warmPool) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run is the filler.
func (w *warmPool) run() {
	defer w.p.healthDone.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := time.Now().Add(w.maxAge)
		for _, b := range w.p.backends {
			if at := w.tend(b); at.Before(next) {
				next = at
			}
		}
		t.Reset(time.Until(next))
		select {
		case <-w.p.draining:
			w.close()
			return
		case <-w.kick:
		case <-t.C:
		}
	}
}

// tend drops b's aged connections, and all of them while b is unhealthy,
// and starts dials up to n. It returns when it needs to look again.
func (w *warmPool) tend(b *backend) (next time.Time) {
	now := time.Now()
	next = now.Add(w.maxAge)
	healthy := b.healthy.Load()
	wc := &b.warm
	wc.mu.Lock()
	var drop []*warmConn
	wc.idle = slices.DeleteFunc(wc.idle, func(c *warmConn) bool {
		if !healthy || now.Sub(c.born) >= w.maxAge {
			c.taken = true
			drop = append(drop, c)
			return true
		}
		return false
	})
	if len(wc.idle) > 0 {
		next = wc.idle[0].born.Add(w.maxAge)
	}
	start := 0
	if healthy && !now.Before(wc.retryAt) {
		for len(wc.idle)+wc.dialing < w.n && b.reserve(w.p.opts.MaxConnsPerNode) {
			wc.dialing++
			start++
		}
	} else if healthy && wc.retryAt.Before(next) {
		next = wc.retryAt
	}
	wc.mu.Unlock()
	for _, c := range drop {
		w.discard(b, c, true)
	}
	for range start {
		w.wg.Go(func() { w.dial(b) })
	}
	return next
}

// dial opens one warm connection to b, whose slot tend reserved.
func (w *warmPool) dial(b *backend) {
	start := time.Now()
	s, _, err := w.p.nodes.upgrade(w.ctx, b, &url.URL{}, w.header, nil, start.Add(w.p.opts.HandshakeTimeout))
	if w.ctx.Err() == nil {
		w.p.metrics.NodeDial(b.host, time.Since(start), err)
	}
	wc := &b.warm
	wc.mu.Lock()
	wc.dialing--
	if err != nil {
		wc.failures++
		wc.retryAt = time.Now().Add(min(warmRetryMax, warmRetryMin<<min(wc.failures-1, 5)))
	} else {
		wc.failures = 0
	}
	keep := err == nil && !w.closed.Load() && b.healthy.Load()
	var c *warmConn
	if keep {
		c = &warmConn{s: s, born: time.Now(), done: make(chan struct{})}
		wc.idle = append(wc.idle, c)
	}
	wc.mu.Unlock()
	switch {
	case keep:
		w.wg.Go(func() { w.watch(b, c) })
		return
	case err != nil && w.ctx.Err() == nil:
		w.p.log.LogAttrs(w.ctx, slog.LevelWarn, "wssproxy: warm node connection failed",
			slog.String("upstream", b.host), slog.String("reason", dialCause(err)), slog.String("error", err.Error()))
		w.poke() // to wait out retryAt
	case s != nil:
		s.conn.Close()
	}
	b.conns.Add(-1)
}

// watch reads c until a client takes it or it fails; bytes the node sends
// meanwhile are kept for the relay. A connection that fails untaken is
// closed and its slot freed.
func (w *warmPool) watch(b *backend, c *warmConn) {
	var buf [512]byte
	for {
		n, err := c.s.conn.Read(buf[:])
		if n > 0 && len(c.s.early)+n > warmEarlyLimit {
			err = errors.New("wssproxy: node sent more than 1 KiB on an idle warm connection")
		} else if n > 0 {
			c.s.early = append(c.s.early, buf[:n]...)
		}
		if err != nil {
			c.err = err
			break
		}
	}
	wc := &b.warm
	wc.mu.Lock()
	lost := !c.taken
	if lost {
		c.taken = true
		wc.idle = slices.DeleteFunc(wc.idle, func(x *warmConn) bool { return x == c })
	}
	wc.mu.Unlock()
	close(c.done)
	if lost {
		c.s.conn.Close()
		b.conns.Add(-1)
		w.p.log.LogAttrs(context.Background(), slog.LevelDebug, "wssproxy: warm node connection lost",
			slog.String("upstream", b.host), slog.String("error", c.err.Error()))
		w.poke()
	}
}

// take hands a live warm connection to b, with its connection slot, or
// returns nil if b has none.
func (w *warmPool) take(b *backend) *socket {
	wc := &b.warm
	for {
		wc.mu.Lock()
		if len(wc.idle) == 0 {
			wc.mu.Unlock()
			return nil
		}
		c := wc.idle[len(wc.idle)-1] // the newest
		wc.idle = wc.idle[:len(wc.idle)-1]
		c.taken = true
		wc.mu.Unlock()
		w.poke()
		c.s.conn.SetReadDeadline(time.Unix(1, 0)) // stops the watcher
		<-c.done
		if !errors.Is(c.err, os.ErrDeadlineExceeded) { // the node closed it meanwhile
			w.discard(b, c, false)
			continue
		}
		c.s.conn.SetReadDeadline(time.Time{})
		return c.s
	}
}

// discard closes a taken warm connection and frees its slot; polite sends
// the node a 1001 first.
func (w *warmPool) discard(b *backend, c *warmConn, polite bool) {
	if polite {
		c.s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.s.conn.Write(wsframe.AppendClose(nil, wsframe.StatusGoingAway, "", true, newMaskKey()))
	}
	c.s.conn.Close()
	b.conns.Add(-1)
}

// close ends every warm connection and waits for the dials and watchers.
func (w *warmPool) close() {
	w.closed.Store(true)
	w.cancel()
	for _, b := range w.p.backends {
		wc := &b.warm
		wc.mu.Lock()
		idle := wc.idle
		wc.idle = nil
		for _, c := range idle {
			c.taken = true
		}
		wc.mu.Unlock()
		for _, c := range idle {
			w.discard(b, c, true)
		}
	}
	w.wg.Wait()
}

// count returns b's idle warm connections.
func (w *warmPool) count(b *backend) int {
	if w == nil {
		return 0
	}
	b.warm.mu.Lock()
	defer b.warm.mu.Unlock()
	return len(b.warm.idle)
}
