package wssproxy

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// shareHub is shared mode's state under the sessions: the node
// connections, the queue of calls waiting for one, the shared
// subscriptions and the cache. One mutex, mu, guards all of it but the
// cache; a client's own mutex is only ever taken inside it.
type shareHub struct {
	p     *Proxy
	o     ShareOptions
	cache *shareCache // nil if disabled

	ctx    context.Context // ends when the proxy closes
	cancel context.CancelFunc
	slots  sync.WaitGroup // one goroutine per node connection slot
	nextID atomic.Uint64  // gateway ids of calls to the node

	mu      sync.Mutex
	conns   []*nodeConn // live, in dial order
	sched   scheduler
	shared  map[string]*sharedSub
	clients map[*shareClient]struct{}
	up      chan struct{} // closed and replaced when a node connection comes up
	genesis string        // the chain's genesis hash, as the first node answered
	// observers are the health checks' head subscriptions (share_health.go)
	observers map[*headObserver]struct{}
	runtime   string // the runtime the nodes last reported (see runtimeKey)
}

func newShareHub(p *Proxy, o *ShareOptions) *shareHub {
	h := &shareHub{
		p:       p,
		o:       *o,
		shared:  map[string]*sharedSub{},
		clients: map[*shareClient]struct{}{},
		up:      make(chan struct{}),
	}
	h.sched.init(o.Queue, o.ClientQueue)
	if o.CacheBytes > 0 {
		h.cache = newShareCache(o.CacheBytes, p.metrics)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, b := range p.backends {
		for range o.ConnsPerNode {
			h.slots.Add(1)
			go h.keep(b)
		}
	}
	return h
}

// close ends the node connections and waits for their goroutines.
func (h *shareHub) close() {
	h.cancel()
	h.slots.Wait()
}

// nodeConn is one of shared mode's WebSocket connections to a node.
type nodeConn struct {
	h  *shareHub
	b  *backend
	ws *websocket.Conn
	// out carries requests to the writer. Every request counts against
	// inflight until answered, so out never holds more than InFlight.
	out  chan []byte
	done chan struct{} // closed when the connection is lost

	// guarded by h.mu
	inflight int
	dead     bool
	pending  map[uint64]*job     // by gateway id
	waiting  []*job              // calls that must go on this connection
	subs     map[string]nodeSink // node subscriptions by canonical id
	genesis  string              // its node's genesis hash, once known
}

// nodeSink receives a node subscription's notifications, on the
// connection's reader goroutine with h.mu held. It must not block.
type nodeSink interface {
	notify(nc *nodeConn, method string, result []byte)
}

// keep holds one node connection slot for backend b: it dials, serves the
// connection until it drops, and dials again, backing off while the node
// is down, until the proxy closes.
func (h *shareHub) keep(b *backend) {
	defer h.slots.Done()
	backoff := 50 * time.Millisecond
	for h.ctx.Err() == nil {
		ws, err := h.dial(b)
		if err != nil {
			h.p.log.LogAttrs(h.ctx, slog.LevelWarn, "wssproxy: shared node connection failed",
				slog.String("upstream", b.host), slog.String("error", err.Error()))
			t := time.NewTimer(backoff)
			select {
			case <-h.ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		h.serve(b, ws)
	}
}

func (h *shareHub) dial(b *backend) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.p.opts.HandshakeTimeout)
	defer cancel()
	hdr := http.Header{}
	for k, v := range h.p.opts.UpstreamHeader {
		hdr[k] = append([]string(nil), v...)
	}
	start := time.Now()
	ws, _, err := websocket.Dial(ctx, b.url.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: h.p.transport()},
		HTTPHeader:      hdr,
		CompressionMode: websocket.CompressionDisabled,
	})
	h.p.metrics.NodeDial(b.host, time.Since(start), err)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(h.p.readLimit())
	return ws, nil
}

// serve runs one node connection until it drops or the proxy closes.
func (h *shareHub) serve(b *backend, ws *websocket.Conn) {
	nc := &nodeConn{
		h: h, b: b, ws: ws,
		out:     make(chan []byte, h.o.InFlight),
		done:    make(chan struct{}),
		pending: map[uint64]*job{},
		subs:    map[string]nodeSink{},
	}
	b.conns.Add(1)
	defer b.conns.Add(-1)
	h.mu.Lock()
	h.conns = append(h.conns, nc)
	close(h.up)
	h.up = make(chan struct{})
	h.askGenesisLocked(nc)
	h.mu.Unlock()

	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		nc.writeLoop(ctx)
	})
	err := nc.readLoop(ctx)
	cancel()
	wg.Wait()
	ws.CloseNow()
	if h.ctx.Err() == nil {
		h.p.log.LogAttrs(context.Background(), slog.LevelWarn, "wssproxy: shared node connection lost",
			slog.String("upstream", b.host), slog.String("error", err.Error()))
	}
	h.lost(nc)
}

func (nc *nodeConn) writeLoop(ctx context.Context) {
	ping := nc.h.p.opts.PingInterval
	var tick <-chan time.Time
	if ping > 0 {
		t := time.NewTicker(ping)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-nc.out:
			if err := nc.write(ctx, msg); err != nil {
				return
			}
		case <-tick:
			pctx, cancel := context.WithTimeout(ctx, ping)
			err := nc.ws.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

func (nc *nodeConn) write(ctx context.Context, msg []byte) error {
	if d := nc.h.p.opts.WriteTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return nc.ws.Write(ctx, websocket.MessageText, msg)
}

// readLoop routes the node's replies to their calls and its notifications
// to their subscriptions.
func (nc *nodeConn) readLoop(ctx context.Context) error {
	var calls []jsonrpc.Call
	for {
		_, msg, err := nc.ws.Read(ctx)
		if err != nil {
			return err
		}
		var batch bool
		calls, batch, err = jsonrpc.Parse(msg, maxBatch, calls[:0])
		if err != nil || batch {
			continue // the gateway sends no batches
		}
		c := &calls[0]
		switch {
		case c.IsResponse:
			nc.reply(msg, c)
		case c.HasMethod && !c.HasID:
			nc.notification(c)
		}
	}
}

// reply completes the call c answers and sends the next waiting one.
func (nc *nodeConn) reply(msg []byte, c *jsonrpc.Call) {
	n, err := strconv.ParseUint(string(c.ID), 10, 64)
	if err != nil {
		return
	}
	h := nc.h
	h.mu.Lock()
	j := nc.pending[n]
	if j == nil {
		h.mu.Unlock()
		return
	}
	delete(nc.pending, n)
	nc.inflight--
	h.dispatchLocked()
	j.done(answer{nc: nc, msg: msg, call: c})
	h.mu.Unlock()
}

func (nc *nodeConn) notification(c *jsonrpc.Call) {
	raw, _ := jsonrpc.Member(c.Params, "subscription")
	id := canonicalSubID(raw)
	result, _ := jsonrpc.Member(c.Params, "result")
	nc.h.mu.Lock()
	if s := nc.subs[id]; s != nil {
		s.notify(nc, c.Method, result)
	}
	nc.h.mu.Unlock()
}

// lost takes a dropped connection out of service: its unanswered calls
// are retried on another connection when they only read, or answered
// with an error; its subscriptions are moved or ended.
func (h *shareHub) lost(nc *nodeConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	nc.dead = true
	for i, c := range h.conns {
		if c == nc {
			h.conns = append(h.conns[:i], h.conns[i+1:]...)
			break
		}
	}
	jobs := make([]*job, 0, len(nc.pending)+len(nc.waiting))
	for _, j := range nc.pending {
		jobs = append(jobs, j)
	}
	jobs = append(jobs, nc.waiting...)
	nc.pending, nc.waiting = nil, nil
	for _, j := range jobs {
		if j.pin == nil && j.readOnly && !j.retried {
			j.retried = true
			h.sched.pushFront(j)
			continue
		}
		j.done(answer{nc: nc, lost: true})
	}
	subs := nc.subs
	nc.subs = nil
	for _, s := range subs {
		if l, ok := s.(interface{ nodeLost(*nodeConn) }); ok {
			l.nodeLost(nc)
		}
	}
	h.dispatchLocked()
}

// liveLocked reports whether a node connection is up. h.mu is held.
func (h *shareHub) liveLocked() bool { return len(h.conns) > 0 }

// waitUp waits until a node connection is up, or ctx ends.
func (h *shareHub) waitUp(ctx context.Context) bool {
	for {
		h.mu.Lock()
		live, up := h.liveLocked(), h.up
		h.mu.Unlock()
		if live {
			return true
		}
		select {
		case <-up:
		case <-ctx.Done():
			return false
		}
	}
}

// askGenesisLocked asks a new node connection for the chain's genesis
// hash, which keys the cache. h.mu is held.
func (h *shareHub) askGenesisLocked(nc *nodeConn) {
	h.submitLocked(&job{method: "chain_getBlockHash", params: []byte("[0]"), pin: nc, done: func(a answer) {
		if a.lost || a.call.HasError {
			return
		}
		g, ok := jsonrpc.Unquote(a.call.Result)
		if !ok || !isBlockHash(a.call.Result) {
			return
		}
		nc.genesis = g
		switch {
		case h.genesis == "":
			h.genesis = g
		case h.genesis != g:
			h.p.log.LogAttrs(context.Background(), slog.LevelError, "wssproxy: node serves another chain",
				slog.String("upstream", nc.b.host), slog.String("genesis", g), slog.String("want", h.genesis))
		}
	}})
}
