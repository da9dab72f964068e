package wssproxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// TestMaxConnsPerNode: clients over the per-node cap get 503 with
// Retry-After before any dial, also when they arrive at once, and a slot
// comes back when a connection ends.
func TestMaxConnsPerNode(t *testing.T) {
	t.Parallel()
	const limit, clients = 3, 12
	node := newEchoNode(t, nil)
	rec := &hookRecorder{}
	p, url := startProxy(t, node.URL(), &Options{MaxConnsPerNode: limit, Metrics: rec.metrics()})

	type result struct {
		c      *websocket.Conn
		status int
		retry  string
		body   string
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, resp, err := websocket.Dial(testCtx(t), url, nil)
			if err == nil {
				results[i] = result{c: c}
				return
			}
			if resp == nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			results[i] = result{status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), body: string(b)}
		})
	}
	wg.Wait()
	var open []*websocket.Conn
	for i, r := range results {
		switch {
		case r.c != nil:
			open = append(open, r.c)
			t.Cleanup(func() { r.c.CloseNow() })
		case r.status != http.StatusServiceUnavailable || r.retry == "" || !strings.Contains(r.body, "connection limit"):
			t.Errorf("client %d: %d Retry-After %q %q, want 503 with Retry-After naming the limit", i, r.status, r.retry, r.body)
		}
	}
	if len(open) != limit {
		t.Fatalf("%d clients connected, want %d", len(open), limit)
	}
	if n := len(node.Headers()); n != limit {
		t.Errorf("node saw %d handshakes, want %d: refused clients must not be dialed", n, limit)
	}
	refused, _, _ := rec.snapshot()
	if len(refused) != clients-limit || refused[0].Reason != RefusalConnsNode {
		t.Errorf("Refused hook: %v, want %d × %s", refused, clients-limit, RefusalConnsNode)
	}

	// A slot comes back when a connection ends.
	open[0].Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the node's slot to be released", func() bool { return p.Nodes()[0].Conns < limit })
	dial(t, url, nil)
}

// TestMaxConnsPerNodePool: in a pool, a full node is skipped for another
// with room, and only when every node is full is the client refused.
func TestMaxConnsPerNodePool(t *testing.T) {
	t.Parallel()
	a, b := newEchoNode(t, nil), newEchoNode(t, nil)
	p, url := startPool(t, []string{a.URL(), b.URL()}, &Options{MaxConnsPerNode: 2})
	// Fill a by hand as if two clients were on it, so that the pool's
	// preference (fewest connections) does not make the test pass alone.
	for range 2 {
		if !p.backends[0].reserve(2) {
			t.Fatal("could not fill node a")
		}
	}
	dial(t, url, nil)
	dial(t, url, nil)
	if na, nb := len(a.Headers()), len(b.Headers()); na != 0 || nb != 2 {
		t.Errorf("handshakes: a %d, b %d; want the full node a skipped", na, nb)
	}
	_, resp, err := websocket.Dial(testCtx(t), url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with every node full: %v %v, want 503", resp, err)
	}
	p.backends[0].conns.Add(-1)
	dial(t, url, nil)
	if na := len(a.Headers()); na != 1 {
		t.Errorf("node a saw %d handshakes once it had room, want 1", na)
	}
}

func TestMaxConnsPerNodeInvalid(t *testing.T) {
	t.Parallel()
	_, err := New("ws://127.0.0.1:9944", &Options{MaxConnsPerNode: -1})
	if err == nil || !strings.Contains(err.Error(), "Options.MaxConnsPerNode") {
		t.Errorf("New with MaxConnsPerNode -1 = %v, want an error naming the field", err)
	}
}
