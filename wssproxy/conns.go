package wssproxy

import (
	"context"
	"net"
	"sync"
	"time"
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
