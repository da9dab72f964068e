package wssproxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// handshakes counts the node's handshakes that carried X-Forwarded-For
// (a client's own dial) and those that did not (warm ones).
func handshakes(n *rpctest.Node) (client, warm int) {
	for _, h := range n.Headers() {
		if h.Get("X-Forwarded-For") != "" {
			client++
		} else {
			warm++
		}
	}
	return client, warm
}

// waitWarm waits until the proxy holds want idle warm connections and
// conns connections in all to its only node.
func waitWarm(t *testing.T, p *Proxy, want int, conns int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d warm of %d node connections", want, conns), func() bool {
		s := p.Nodes()[0]
		return s.WarmConns == want && s.Conns == conns
	})
}

// TestWarmConnsUsed: with NodeWarmConns the proxy keeps that many
// upgraded connections on the node; a client on the node's own path
// takes one (the node sees no new handshake for it, and none with its
// X-Forwarded-For) and the proxy dials a replacement, never holding more
// than the bound; a client on another path, or with a subprotocol, gets a
// dial of its own, as without the option.
func TestWarmConnsUsed(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	logger, logs := captureLogs(t)
	p, url := startProxy(t, node.URL(), &Options{NodeWarmConns: 2, Logger: logger})
	waitWarm(t, p, 2, 2)
	ctx := testCtx(t)
	var clients []*websocket.Conn
	for i := range 3 {
		c := dial(t, url, nil)
		clients = append(clients, c)
		chainCall(t, ctx, c, i+1)
		waitWarm(t, p, 2, int64(i+1)+2)
		if client, warm := handshakes(node); client != 0 || warm != i+3 {
			t.Fatalf("after %d clients the node saw %d client and %d warm handshakes; want 0 and %d", i+1, client, warm, i+3)
		}
		waitFor(t, fmt.Sprintf("the node to hold %d connections", i+3), func() bool { return node.Conns() == i+3 })
	}
	for _, c := range clients {
		c.Close(websocket.StatusNormalClosure, "")
	}
	waitWarm(t, p, 2, 2)
	if l := logs.lines("connection closed", "warm=true"); len(l) != 3 {
		t.Errorf("want 3 connection logs with warm=true, got %q", l)
	}

	// Requests a warm connection cannot serve.
	for _, tt := range []struct {
		name string
		url  string
		opts *websocket.DialOptions
	}{
		{"path", url + "/other", nil},
		{"query", url + "/?x=1", nil},
		{"subprotocol", url, &websocket.DialOptions{Subprotocols: []string{"chat"}}},
	} {
		before, _ := handshakes(node)
		c := dial(t, tt.url, tt.opts)
		chainCall(t, ctx, c, 9)
		if after, _ := handshakes(node); after != before+1 {
			t.Errorf("%s: the node saw %d handshakes with X-Forwarded-For, want %d", tt.name, after, before+1)
		}
		c.Close(websocket.StatusNormalClosure, "")
		waitWarm(t, p, 2, 2)
	}
}

// TestWarmConnsCapped: warm connections count against MaxConnsPerNode:
// they fill only free slots, and once clients hold every slot the next
// client is refused with 503 before any dial.
func TestWarmConnsCapped(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p, url := startProxy(t, node.URL(), &Options{NodeWarmConns: 2, MaxConnsPerNode: 3})
	waitWarm(t, p, 2, 2)
	ctx := testCtx(t)
	for i, wantWarm := range []int{2, 1, 0} { // 1+2, 2+1, 3+0 of 3 slots
		c := dial(t, url, nil)
		t.Cleanup(func() { c.CloseNow() })
		chainCall(t, ctx, c, i+1)
		waitWarm(t, p, wantWarm, 3)
	}
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth client: %v, %v; want 503", err, resp)
	}
	waitFor(t, "the node to hold the cap, 3 connections", func() bool { return node.Conns() == 3 })
}

// TestWarmConnsReplaced: a warm connection is closed and replaced when it
// ages past PingInterval unused, and when the node closes it.
func TestWarmConnsReplaced(t *testing.T) {
	t.Parallel()
	t.Run("aged", func(t *testing.T) {
		t.Parallel()
		node := startNode(t)
		p, _ := startProxy(t, node.URL(), &Options{NodeWarmConns: 2, PingInterval: 100 * time.Millisecond})
		waitFor(t, "two generations of warm connections", func() bool {
			_, warm := handshakes(node)
			return warm >= 6
		})
		waitWarm(t, p, 2, 2)
		waitFor(t, "the node to hold only the two live ones", func() bool { return node.Conns() == 2 })
	})
	t.Run("closed by the node", func(t *testing.T) {
		t.Parallel()
		node := newEchoNode(t, nil)
		p, url := startProxy(t, node.URL(), &Options{NodeWarmConns: 2})
		waitWarm(t, p, 2, 2)
		node.kill() // drops both without a close frame
		waitFor(t, "replacements", func() bool { return len(node.Headers()) >= 4 })
		waitWarm(t, p, 2, 2)
		c := dial(t, url, nil) // on a live one
		ctx := testCtx(t)
		if err := c.Write(ctx, websocket.MessageText, []byte("ping?")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "ping?" {
			t.Fatalf("echo through a replaced warm connection: %q, %v", msg, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	})
}

// TestWarmConnsGreeting: what a node sends on a warm connection before a
// client takes it (here a greeting right after the handshake) reaches
// that client first, as on a connection dialed for it.
func TestWarmConnsGreeting(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, func(n *echoNode) { n.greet = "hello" })
	p, url := startProxy(t, node.URL(), &Options{NodeWarmConns: 1})
	waitWarm(t, p, 1, 1)
	ctx := testCtx(t)
	for range 2 { // the first warm connection, then its replacement
		c := dial(t, url, nil)
		if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
			t.Fatalf("first message %q, %v; want the node's greeting", msg, err)
		}
		if h := node.Headers(); h[len(h)-1].Get("X-Forwarded-For") != "" {
			t.Fatal("the client was not served warm")
		}
		c.Close(websocket.StatusNormalClosure, "")
		waitWarm(t, p, 1, 1)
	}
}

// TestWarmConnsUnhealthy: a node that turns unhealthy loses its warm
// connections, and gets them back once healthy again.
func TestWarmConnsUnhealthy(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p, _ := startProxy(t, node.URL(), &Options{NodeWarmConns: 2})
	waitWarm(t, p, 2, 2)
	node.SetHealth(rpctest.Health{IsSyncing: true})
	p.checkAll()
	if s := p.Nodes()[0]; s.State != StateSyncing {
		t.Fatalf("node state %q after the check, want %q", s.State, StateSyncing)
	}
	waitWarm(t, p, 0, 0)
	waitFor(t, "the node to see them closed", func() bool { return node.Conns() == 0 })
	node.SetHealth(rpctest.Health{Peers: 1})
	p.checkAll()
	waitWarm(t, p, 2, 2)
}

// TestWarmConnsClose: Close closes the warm connections and waits for
// their goroutines (the package's TestMain checks for leaks).
func TestWarmConnsClose(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p, err := New(node.URL(), &Options{NodeWarmConns: 3, HealthInterval: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitWarm(t, p, 3, 3)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if s := p.Nodes()[0]; s.WarmConns != 0 || s.Conns != 0 {
		t.Errorf("after Close: %d warm of %d connections, want none", s.WarmConns, s.Conns)
	}
	waitFor(t, "the node to see them closed", func() bool { return node.Conns() == 0 })
}

func TestWarmConnsOptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{NodeWarmConns: -1}, "Options.NodeWarmConns is -1"},
		{Options{NodeWarmConns: 1, Share: &ShareOptions{}}, "Options.NodeWarmConns needs splice mode"},
	} {
		if _, err := New("ws://127.0.0.1:1", &tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New with %+v: %v, want an error naming %q", tt.opts, err, tt.want)
		}
	}
}
