package wssproxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/jsonrpc"
	"golang.org/x/time/rate"
)

// shareClient is one client WebSocket in shared mode. Its reader judges
// each message with the session and routes the calls over the hub's node
// connections; its writer sends what is queued for it, bounded by
// ShareOptions.ClientBacklog.
type shareClient struct {
	h     *shareHub
	key   string
	sess  *session
	ws    *websocket.Conn
	start time.Time

	ctx    context.Context
	cancel context.CancelFunc

	// guarded by h.mu
	subs        map[string]*clientSub // by canonical client subscription id
	closed      bool
	outstanding int // calls routed and not yet answered

	// traffic, reported to Metrics.Traffic when the client leaves
	inMsgs, inBytes   int64 // reader only
	outMsgs, outBytes int64 // writer only

	mu    sync.Mutex
	q     [][]byte
	wake  chan struct{}
	final *policyClose // close after what is queued
	gone  bool         // nothing more is queued
}

// serveShared accepts a client WebSocket in shared mode: no node is dialed
// for it, but a node connection must be up. key and release come from the
// handshake checks serveWebSocket made.
func (p *Proxy) serveShared(w http.ResponseWriter, r *http.Request, key string, release func()) {
	h := p.hub
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.HandshakeTimeout)
	up := h.waitUp(ctx)
	cancel()
	if !up {
		release()
		p.refuse(w, r, http.StatusBadGateway, RefusalNodeDown, "node unavailable: no node connection is up")
		return
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		release()
		p.refuse(w, r, http.StatusServiceUnavailable, RefusalShuttingDown, "gateway is shutting down")
		return
	}
	p.done.Add(1)
	p.mu.Unlock()
	mode, threshold := p.sharedDeflate()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify:   true, // origins were checked already
		CompressionMode:      mode,
		CompressionThreshold: threshold,
	})
	if err != nil {
		release()
		p.done.Done()
		return
	}
	ws.SetReadLimit(p.readLimit())
	c := &shareClient{h: h, key: key, ws: ws, start: time.Now(), subs: map[string]*clientSub{}, wake: make(chan struct{}, 1)}
	c.sess = &session{p: p, key: key, shared: true}
	if o := &p.opts; o.MessageRate > 0 {
		c.sess.conn = rate.NewLimiter(o.MessageRate, o.MessageBurst)
	}
	c.ctx, c.cancel = context.WithCancel(h.ctx)
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	p.metrics.ConnOpened(sharedUpstream)
	go func() {
		defer p.done.Done()
		defer release()
		c.run()
	}()
}

// shareMaxSubs caps a shared-mode client's subscriptions when
// Options.MaxSubscriptions does not: a node's own default cap per
// connection, which shared mode's few node connections cannot apply per
// client.
const shareMaxSubs = 1024

// sharedUpstream names the node side of shared-mode clients in metrics.
const sharedUpstream = "shared"

func (c *shareClient) run() {
	var wg sync.WaitGroup
	wg.Go(c.writeLoop)
	closedBy := "client"
	for {
		_, msg, err := c.ws.Read(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				closedBy = "gateway"
			}
			break
		}
		c.inMsgs++
		c.inBytes += int64(len(msg))
		if pc := c.handle(msg); pc != nil {
			c.closeAfterQueued(pc)
		}
	}
	c.cancel()
	wg.Wait()
	c.ws.CloseNow()
	c.mu.Lock()
	c.gone, c.q = true, nil // answers still in flight are dropped
	c.mu.Unlock()
	c.leave()
	m := c.h.p.metrics
	m.Traffic(sharedUpstream, true, c.inMsgs, c.inBytes)
	m.Traffic(sharedUpstream, false, c.outMsgs, c.outBytes)
	m.ConnClosed(sharedUpstream, ConnEnd{Duration: time.Since(c.start), ClosedBy: closedBy, ClientCode: -1})
}

// handle judges one client message and routes its calls. It returns an
// error to close the client with, or nil.
func (c *shareClient) handle(msg []byte) *policyClose {
	s := c.sess
	calls, batch, v := s.judgeMessage(c.ctx, msg)
	defer clear(s.calls)
	if v != nil {
		if v.close != nil {
			if pc, ok := v.close.(*policyClose); ok {
				return pc
			}
			return &policyClose{websocket.StatusPolicyViolation, v.close.Error()}
		}
		if v.reply != nil {
			c.enqueue(bytes.Clone(v.reply))
		}
		return nil
	}
	col := &collector{c: c, batch: batch}
	for _, e := range s.errs {
		col.parts = append(col.parts, bytes.Clone(e))
	}
	var routed []*jsonrpc.Call
	for _, i := range s.keep {
		if cl := &calls[i]; answeredID(cl) && cl.HasMethod && !cl.IsResponse {
			routed = append(routed, cl)
		}
	}
	col.left = len(routed)
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if col.left == 0 {
		col.flushLocked()
		return nil
	}
	for _, cl := range routed {
		c.routeLocked(cl.Method, bytes.Clone(cl.Params), bytes.Clone(cl.ID), col)
	}
	return nil
}

// routeLocked sends one call where it belongs: a shared subscription, the
// node connection of the subscription it names, the cache, or the queue.
// h.mu is held.
func (c *shareClient) routeLocked(method string, params, id []byte, col *collector) {
	c.outstanding++
	if c.outstanding > MaxTrackedCalls {
		if subscribeOf(method) != nil {
			c.sess.subFailed() // judge counted it
		}
		c.h.p.metrics.Denied("tracked")
		col.doneLocked(jsonrpc.AppendError(nil, id, jsonrpc.CodeLimitExceeded,
			fmt.Sprintf("limit exceeded: at most %d calls awaiting replies per connection", MaxTrackedCalls), ""), nil)
		return
	}
	if f := subscribeOf(method); f != nil {
		if len(c.subs) >= shareMaxSubs {
			c.h.p.metrics.Denied("subscriptions")
			c.sess.subFailed()
			col.doneLocked(jsonrpc.AppendError(nil, id, jsonrpc.CodeLimitExceeded,
				fmt.Sprintf("limit exceeded: at most %d subscriptions per connection", shareMaxSubs), ""), nil)
			return
		}
		if key, m, p, ok := shareKey(f, method, params); ok {
			c.h.joinSharedLocked(c, f, key, m, p, id, col)
			return
		}
		c.openOwnLocked(f, method, params, id, col)
		return
	}
	if f := unsubscribeOf(method); f != nil {
		raw, _ := jsonrpc.Param(params, 0, "subscription")
		if cs := c.subs[canonicalSubID(raw)]; cs != nil && cs.fam.endedBy(f) {
			c.unsubscribeLocked(cs, method, params, raw, id, col)
			return
		}
	}
	if strings.HasPrefix(method, "chainHead_") {
		raw, _ := jsonrpc.Param(params, 0, "followSubscription")
		if cs := c.subs[canonicalSubID(raw)]; cs != nil && cs.nc != nil {
			j := c.callJob(method, replaceValue(params, raw, cs.nodeRaw), id, col)
			j.pin = cs.nc
			c.submitLocked(j, id, col)
			return
		}
	}
	if c.h.cache != nil && c.h.cachedLocked(c, method, params, id, col) {
		return
	}
	c.submitLocked(c.callJob(method, params, id, col), id, col)
}

// callJob is a plain call whose reply goes back to the client as the node
// sent it, with the client's id.
func (c *shareClient) callJob(method string, params, id []byte, col *collector) *job {
	return &job{
		key: c.key, owner: c, method: method, params: params, readOnly: readOnly(method),
		done: func(a answer) {
			c.h.learnLocked(method, params, a)
			col.doneLocked(replyFor(a, id), nil)
		},
	}
}

// submitLocked queues j, answering the client at once if the queue is
// full. h.mu is held.
func (c *shareClient) submitLocked(j *job, id []byte, col *collector) bool {
	if err := c.h.submitLocked(j); err != nil {
		c.sess.p.metrics.Denied("queue")
		col.doneLocked(jsonrpc.AppendError(nil, id, jsonrpc.CodeLimitExceeded, err.Error(), ""), nil)
		return false
	}
	return true
}

// enqueue queues msg for the client. A client that falls ClientBacklog
// messages behind is sent an error and closed.
func (c *shareClient) enqueue(msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return
	}
	if len(c.q) >= c.h.o.ClientBacklog {
		c.overflowLocked()
	} else {
		c.q = append(c.q, msg)
	}
	c.signal()
}

func (c *shareClient) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// overflow closes a client that fell too far behind: what was queued for
// it is replaced by a JSON-RPC error saying why, then the close frame.
func (c *shareClient) overflow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gone {
		c.overflowLocked()
		c.signal()
	}
}

func (c *shareClient) overflowLocked() {
	reason := fmt.Sprintf("client too slow: over %d messages waiting to be sent to it", c.h.o.ClientBacklog)
	c.h.p.metrics.Denied("backlog")
	clear(c.q)
	c.q = append(c.q[:0], jsonrpc.AppendError(nil, nil, jsonrpc.CodeLimitExceeded, "limit exceeded: "+reason, ""))
	c.final = &policyClose{websocket.StatusPolicyViolation, reason}
	c.gone = true
}

// closeAfterQueued closes the client with pc once what is queued is sent.
func (c *shareClient) closeAfterQueued(pc *policyClose) {
	c.mu.Lock()
	if !c.gone {
		c.final, c.gone = pc, true
	}
	c.mu.Unlock()
	c.signal()
}

func (c *shareClient) writeLoop() {
	defer c.cancel()
	ping := c.h.p.opts.PingInterval
	var tick <-chan time.Time
	if ping > 0 {
		t := time.NewTicker(ping)
		defer t.Stop()
		tick = t.C
	}
	var spare [][]byte
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick:
			ctx, cancel := context.WithTimeout(c.ctx, ping)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				return
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		q, final := c.q, c.final
		c.q = spare[:0]
		c.mu.Unlock()
		for i, msg := range q {
			if err := c.write(msg); err != nil {
				return
			}
			c.outMsgs++
			c.outBytes += int64(len(msg))
			q[i] = nil
		}
		spare = q
		if final != nil {
			c.ws.Close(final.code, final.reason)
			return
		}
	}
}

func (c *shareClient) write(msg []byte) error {
	ctx := c.ctx
	if d := c.h.p.opts.WriteTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

// leave ends what the client held: its queued calls, its share of shared
// subscriptions, its own subscriptions on the node.
func (c *shareClient) leave() {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	c.closed = true
	delete(h.clients, c)
	h.sched.drop(c.key, c)
	for _, cs := range c.subs {
		cs.endLocked(true)
	}
	c.subs = nil
}

// clientList returns the shared-mode clients, for acting on them without
// the hub's lock.
func (h *shareHub) clientList() []*shareClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	clients := make([]*shareClient, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	return clients
}

// drainClients closes every shared-mode client with 1001 once what is
// queued for it is sent, for Shutdown.
func (h *shareHub) drainClients() {
	for _, c := range h.clientList() {
		c.closeAfterQueued(&policyClose{websocket.StatusGoingAway, reasonShutdown})
	}
}

// killClients drops every shared-mode client at once, for Close.
func (h *shareHub) killClients() {
	for _, c := range h.clientList() {
		c.cancel()
		c.ws.CloseNow()
	}
}

// clientCount is the number of shared-mode clients.
func (h *shareHub) clientCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}
