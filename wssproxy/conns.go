package wssproxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
// waits likewise and returns net.ErrClosed; no client gets a second close
// frame. Each connection is logged and counted once, as closed by the
// gateway with the code it sent (closed_by=gateway, 1001). Shutdown returns
// only once the goroutines it started have exited.
//
// Shutdown does not stop the http.Server the proxy is mounted on; call its
// Shutdown too (before or after, both orders work).
func (p *Proxy) Shutdown(ctx context.Context) error {
	conns, first := p.snapshot()
	var drains sync.WaitGroup
	defer drains.Wait()
	for _, pc := range conns {
		drains.Go(pc.drain) // a no-op for one an earlier Shutdown drains
	}
	if p.hub != nil {
		p.hub.drainClients()
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
		p.closeHub()
		return ctx.Err()
	}
	p.healthDone.Wait()
	p.closeHub()
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
	p.closeHub()
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
	if p.hub != nil {
		p.hub.killClients()
	}
}

// closeHub ends shared mode's node connections, once the clients are gone.
func (p *Proxy) closeHub() {
	if p.hub != nil {
		p.hub.close()
	}
}

// Conns returns the number of open proxied WebSocket connections.
func (p *Proxy) Conns() int {
	n := 0
	if p.hub != nil {
		n = p.hub.clientCount()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return n + len(p.conns)
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
	cc, nc *websocket.Conn          // client and node
	cside  atomic.Pointer[sideConn] // the client's socket, under cc
	nside  *sideConn                // the node's socket, under nc

	// toClient serialises whole messages written to the client, so a drain
	// never cuts a message in half.
	toClient  sync.Mutex
	draining  bool         // guarded by toClient
	closeSent atomic.Int32 // the close code drain sent the client, or 0
	drainOnce sync.Once

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
// and what it sent before seeing that still reaches the node: the
// client-to-node copier goes on until the client's answering close frame
// ends it, and finish closes the node. A client that does not answer
// within closeTimeout is dropped.
//
// The close frame is written on the client's socket, not with cc.Close, which
// would read and discard the client's messages until its close frame. It is
// the last frame the client gets: the socket then refuses writes, so neither
// a second Shutdown nor the websocket package's echo of the client's close
// sends another (RFC 6455 section 5.5.1).
func (pc *proxyConn) drain() {
	if h := pc.p.testHookDrain; h != nil {
		h()
	}
	pc.drainOnce.Do(pc.drainNow)
}

func (pc *proxyConn) drainNow() {
	pc.toClient.Lock()
	pc.draining = true // no data frame is in progress: writes hold toClient
	cc, ctx := pc.cc, pc.ctx
	side := pc.cside.Load()
	if cc == nil || side == nil {
		pc.toClient.Unlock()
		return // still handshaking; run sees draining and stops
	}
	// Holding toClient, no message is half written; a pong the websocket
	// package writes meanwhile is one whole Write, as is this frame.
	// Recorded first: the client may answer before writeLast returns.
	pc.closeSent.Store(int32(websocket.StatusGoingAway))
	err := side.writeLast(closeFrame(websocket.StatusGoingAway, reasonShutdown)) // after any held bytes
	if err != nil {
		pc.closeSent.Store(0)
	}
	pc.toClient.Unlock()
	if err != nil {
		pc.kill()
		return
	}
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		pc.kill()
	}
}

// closeTimeout bounds the wait for a client's answer to a close frame, as
// the websocket package's own close handshake does.
const closeTimeout = 5 * time.Second

// closeFrame is a server's (unmasked) close frame.
func closeFrame(code websocket.StatusCode, reason string) []byte {
	reason = truncateReason(reason)
	return append([]byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)}, reason...)
}

// errCloseSent is the sticky write error of a socket after its last
// frame, a close. It is a net.ErrClosed, which the websocket package
// ignores when it tries to echo the peer's close.
var errCloseSent = fmt.Errorf("wssproxy: close frame already sent: %w", net.ErrClosed)

// writeLast writes p, after anything held, as the last bytes of the
// socket: later writes fail with errCloseSent.
func (s *sideConn) writeLast(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.flushLocked(); err != nil {
		return err
	}
	if _, err := s.send(p); err != nil {
		return err
	}
	s.err = errCloseSent
	return nil
}

// sentClose returns the close code drain sent the client, or 0. It takes
// no lock: finish calls it while a write stalled on the client may hold
// toClient.
func (pc *proxyConn) sentClose() websocket.StatusCode {
	return websocket.StatusCode(pc.closeSent.Load())
}

// kill drops both sides without handshakes.
func (pc *proxyConn) kill() {
	if side := pc.cside.Load(); side != nil {
		side.Conn.Close() // first: a write blocked on the client holds toClient
	}
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
