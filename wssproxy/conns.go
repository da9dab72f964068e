package wssproxy

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// newConn registers a connection for r, or returns nil once the proxy is
// shutting down.
func (p *Proxy) newConn(key string) *proxyConn {
	pc := &proxyConn{p: p, key: key, start: time.Now(), sess: p.newSession(key)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil
	}
	p.conns[pc] = struct{}{}
	p.done.Add(1)
	return pc
}

func (p *Proxy) unregister(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	if pc.b != nil {
		pc.b.conns.Add(-1)
	}
	p.done.Done()
}

// snapshot marks the proxy closing and returns the live connections.
// first reports whether this call started the closing.
func (p *Proxy) snapshot() (conns []*proxyConn, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first = !p.closing
	if first {
		p.closing = true
		close(p.draining)
	}
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	return conns, first
}

// Shutdown stops the proxy gracefully: new WebSocket handshakes get 503,
// and every open connection is closed with 1001 (going away) once the
// message in flight to its client has been delivered; messages the client
// sent before it saw the close frame still reach the node. Shutdown waits
// for the connections to end; if ctx ends first, the rest are dropped as
// by [Proxy.Close] and ctx's error is returned. A second Shutdown or Close
// waits likewise and returns net.ErrClosed.
//
// Shutdown does not stop the http.Server the proxy is mounted on; call its
// Shutdown too (before or after, both orders work).
func (p *Proxy) Shutdown(ctx context.Context) error {
	conns, first := p.snapshot()
	for _, pc := range conns {
		go pc.drain()
	}
	done := make(chan struct{})
	go func() {
		p.done.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.closeAll()
		<-done
		p.healthDone.Wait()
		return ctx.Err()
	}
	p.healthDone.Wait()
	if !first {
		return net.ErrClosed
	}
	return nil
}

// Close drops every connection at once, without close handshakes, and
// waits for their goroutines to exit. New handshakes get 503. A second
// Close returns net.ErrClosed.
func (p *Proxy) Close() error {
	_, first := p.snapshot()
	p.closeAll()
	p.done.Wait()
	p.healthDone.Wait()
	if !first {
		return net.ErrClosed
	}
	return nil
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.kill()
	}
}

// Conns returns the number of open proxied WebSocket connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// proxyConn is one client connection spliced to one node connection.
type proxyConn struct {
	p     *Proxy
	b     *backend // the node, once dialed
	key   string   // the client, as Options.Key names it
	start time.Time
	sess  *session // nil when messages need no inspection

	ctx    context.Context // ends when the connection does; for waits only
	cancel context.CancelFunc

	// set by run before the copiers start
	cc, nc *websocket.Conn // client and node

	// toClient serialises whole messages written to the client, so a drain
	// never cuts a message in half.
	toClient sync.Mutex
	draining bool // guarded by toClient

	stats    [2]dirStats // indexed by direction
	reported [2][2]int64 // msgs and bytes already passed to Metrics

	endOnce sync.Once
	end     closeInfo // set in endOnce

	ka *keepalive
}

// dirStats counts one direction's traffic. Only its copier writes it.
type dirStats struct {
	msgs, bytes atomicInt
	// writes started and finished, for the write-stall check
	writeStart, writeDone atomicInt
}

// drain closes the connection gracefully for Shutdown: no more messages are
// written to the client after the one in flight, the client is sent 1001,
// and what it sent before seeing that still reaches the node; once its
// close answer arrives the node is closed too (by finish).
func (pc *proxyConn) drain() {
	pc.toClient.Lock()
	pc.draining = true
	cc := pc.cc
	pc.toClient.Unlock()
	if cc == nil {
		return // still handshaking; run sees draining and stops
	}
	cc.Close(websocket.StatusGoingAway, reasonShutdown)
}

// kill drops both sides without handshakes.
func (pc *proxyConn) kill() {
	pc.toClient.Lock()
	pc.draining = true
	cc, nc := pc.cc, pc.nc
	pc.toClient.Unlock()
	if cc != nil {
		cc.CloseNow()
	}
	if nc != nil {
		nc.CloseNow()
	}
}
