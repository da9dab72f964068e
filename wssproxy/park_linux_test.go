package wssproxy

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// parkedCopiers counts the copiers of p's connections that are parked, out
// of all of them.
func parkedCopiers(p *Proxy) (parked, total int) {
	p.mu.Lock()
	var cs []*copier
	for pc := range p.conns {
		pc.mu.Lock()
		for _, c := range pc.copiers {
			if c != nil {
				cs = append(cs, c)
			}
		}
		pc.mu.Unlock()
	}
	p.mu.Unlock()
	thePoller.mu.Lock()
	defer thePoller.mu.Unlock()
	for _, c := range cs {
		if thePoller.parked[c.id] == c {
			parked++
		}
	}
	return parked, len(cs)
}

func waitParked(t *testing.T, p *Proxy, want int) {
	t.Helper()
	waitFor(t, "every copier parked", func() bool {
		parked, total := parkedCopiers(p)
		return total == want && parked == want
	})
}

// TestParkedConnections: idle connections hold no goroutine (their copiers
// park: at once when new, after parkAfter once they have relayed), and a
// parked connection relays, closes and shuts down as a running one does.
// Over TLS, so crypto/tls's buffering is on the path.
func TestParkedConnections(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	p, err := New(node.URL(), &Options{Logger: testLogger(t), Policy: AllowAll(), HealthInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Listener = NewListener(srv.Listener)
	srv.StartTLS()
	t.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	ctx := testCtx(t)
	const n = 4
	var clients []*websocket.Conn
	for range n {
		c := dial(t, url, &websocket.DialOptions{HTTPClient: srv.Client()})
		clients = append(clients, c)
	}
	waitParked(t, p, 2*n) // new connections, never read from: parked at once

	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: pooled buffers, pieces
	echo := func(i int, msg []byte) {
		t.Helper()
		if err := clients[i].Write(ctx, websocket.MessageBinary, msg); err != nil {
			t.Fatalf("client %d write: %v", i, err)
		}
		_, got, err := clients[i].Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("client %d echo: %d bytes, %v; want %d bytes back", i, len(got), err, len(msg))
		}
	}
	for i := range clients {
		echo(i, []byte("wake up"))
		echo(i, big)
	}
	waitParked(t, p, 2*n) // idle for parkAfter: parked again
	for i := range clients {
		echo(i, big)
	}
	waitParked(t, p, 2*n)

	// A client's close frame wakes its copier, and the node's answer the
	// other.
	if err := clients[0].Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
	waitFor(t, "the closed connection to end", func() bool { return p.Conns() == n-1 })

	// Shutdown sends parked connections 1001 and waits for their answers.
	waitParked(t, p, 2*(n-1))
	errc := make(chan error, 1)
	go func() { errc <- p.Shutdown(ctx) }()
	for i, c := range clients[1:] {
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
			t.Errorf("client %d saw %v, want 1001", i+1, err)
		}
	}
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestParkedIdleTimeout: the gateway ending a parked connection (here its
// idle timeout) wakes its copiers for the close handshake.
func TestParkedIdleTimeout(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	p, url := startProxy(t, node.URL(), &Options{IdleTimeout: 200 * time.Millisecond})
	c := dial(t, url, nil)
	waitParked(t, p, 2)
	_, _, err := c.Read(testCtx(t))
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "idle timeout" {
		t.Errorf("client saw %v, want 1001 idle timeout", err)
	}
	waitFor(t, "the connection to end", func() bool { return p.Conns() == 0 })
}

// TestParkedNodeGone: a node that drops a parked connection wakes its
// copier, and the client gets 1012.
func TestParkedNodeGone(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	p, url := startProxy(t, node.URL(), nil)
	c := dial(t, url, nil)
	waitParked(t, p, 2)
	node.mu.Lock()
	for nc := range node.conns {
		nc.CloseNow()
	}
	node.mu.Unlock()
	_, _, err := c.Read(testCtx(t))
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart {
		t.Errorf("client saw %v, want 1012", err)
	}
	waitFor(t, "the connection to end", func() bool { return p.Conns() == 0 })
}
