package wssproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// startPool serves a pool of upstreams on a loopback httptest server and
// returns it with its ws:// URL. Unless opts says otherwise: a pure splice
// (AllowAll) and no health checks.
func startPool(t *testing.T, upstreams []string, opts *Options) (*Proxy, string) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Policy == nil {
		opts.Policy = AllowAll() // splice tests send non-JSON; inspection has its own tests
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = -1 // health checks have their own tests
	}
	p, err := NewPool(upstreams, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Listener = NewListener(srv.Listener) // as examples/basic serves
	srv.Start()
	t.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return p, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// poolConns returns the open connections per node, in pool order.
func poolConns(p *Proxy) []int64 {
	var out []int64
	for _, n := range p.Nodes() {
		out = append(out, n.Conns)
	}
	return out
}

// dialTracked dials the pool at url and returns the connection with the
// index of the node it went to. The pool counts a connection before it
// accepts the client, so the count is exact once the dial returns; no
// other connection of p may open or close meanwhile.
func dialTracked(t *testing.T, p *Proxy, url string) (*websocket.Conn, int) {
	t.Helper()
	before := poolConns(p)
	c := dial(t, url, nil)
	after := poolConns(p)
	for i := range after {
		if after[i] == before[i]+1 {
			return c, i
		}
	}
	t.Fatalf("new connection not counted on any node: before %v, after %v", before, after)
	return nil, -1
}

// chainCall makes one system_chain call on c and checks the reply.
func chainCall(t *testing.T, ctx context.Context, c *websocket.Conn, id int) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(callJSON(id, "system_chain"))); err != nil {
		t.Fatalf("call %d: %v", id, err)
	}
	r := readReply(t, ctx, c)
	if r.Error != nil || string(r.ID) != itoa(id) || string(r.Result) != `"Development"` {
		t.Fatalf("call %d: reply %+v %s", id, r, r.Result)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// wantClose fails t unless err is a close frame with code.
func wantClose(t *testing.T, what string, err error, code websocket.StatusCode) websocket.CloseError {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("%s: got %v, want close %d", what, err, code)
	}
	return ce
}

// TestPoolLeastConns: connections go to the node with the fewest, not in
// turn: after the clients of one node leave, new ones all go there.
func TestPoolLeastConns(t *testing.T) {
	t.Parallel()
	a, b := startNode(t), startNode(t)
	nodes := []*rpctest.Node{a, b}
	p, url := startPool(t, []string{a.URL(), b.URL()}, nil)
	ctx := testCtx(t)

	on := [2][]*websocket.Conn{}
	for range 4 {
		c, i := dialTracked(t, p, url)
		on[i] = append(on[i], c)
	}
	if len(on[0]) != 2 || len(on[1]) != 2 {
		t.Fatalf("4 clients spread %d/%d over 2 nodes, want 2/2", len(on[0]), len(on[1]))
	}
	for i, n := range nodes {
		waitFor(t, "node to see its 2 connections", func() bool { return n.Conns() == 2 })
		for j, c := range on[i] {
			chainCall(t, ctx, c, j)
		}
	}

	// Node 0's clients leave; least connections sends the next two there
	// (round robin would split them).
	for _, c := range on[0] {
		c.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, "node 0 to drop its connections", func() bool { return p.Nodes()[0].Conns == 0 && a.Conns() == 0 })
	for range 2 {
		c, i := dialTracked(t, p, url)
		if i != 0 {
			t.Errorf("with %v connections, a client went to node %d, want 0", poolConns(p), i)
		}
		chainCall(t, ctx, c, 9)
	}
	if got := poolConns(p); got[0] != 2 || got[1] != 2 {
		t.Errorf("connections per node %v, want [2 2]", got)
	}
}

// TestPoolNodeDownAtDial: a node that refuses connections is skipped for
// the next one, and marked unhealthy; with every node down the client gets
// a 502 with a reason.
func TestPoolNodeDownAtDial(t *testing.T) {
	t.Parallel()
	t.Run("next node serves", func(t *testing.T) {
		t.Parallel()
		live := startNode(t)
		p, url := startPool(t, []string{"ws://" + freeAddr(t), live.URL()}, nil)
		ctx := testCtx(t)
		// The first client may try either node; once it is on the live one,
		// the dead one (healthy as far as the pool knows, with fewer
		// connections) is the second client's first choice.
		for i := range 2 {
			c, got := dialTracked(t, p, url)
			if got != 1 {
				t.Fatalf("client %d went to node %d, want the live node 1", i, got)
			}
			chainCall(t, ctx, c, i)
		}
		waitFor(t, "live node to see 2 connections", func() bool { return live.Conns() == 2 })
		dead := p.Nodes()[0]
		if dead.Healthy || !strings.Contains(dead.Reason, "dial failed") || !strings.Contains(dead.Reason, "connection refused") {
			t.Errorf("dead node status %+v, want unhealthy with the dial failure", dead)
		}
	})
	t.Run("all down", func(t *testing.T) {
		t.Parallel()
		p, url := startPool(t, []string{"ws://" + freeAddr(t), "ws://" + freeAddr(t)}, nil)
		_, resp, err := websocket.Dial(testCtx(t), url, nil)
		if err == nil || resp == nil {
			t.Fatalf("dial with every node down: err %v, resp %v; want a 502", err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "node unavailable: connection refused") {
			t.Errorf("got %d %q, want 502 naming the reason", resp.StatusCode, body)
		}
		for i, n := range p.Nodes() {
			if n.Healthy || n.Conns != 0 {
				t.Errorf("node %d: %+v, want unhealthy without connections", i, n)
			}
		}
		if p.Conns() != 0 {
			t.Errorf("proxy holds %d connections after a refused handshake", p.Conns())
		}
	})
}

// TestPoolNodeRestart: when a node dies its clients get 1012 at once (not
// after a ping timeout), reconnect to the other node, which serves them;
// once the node is back, health checks return it to the pool.
func TestPoolNodeRestart(t *testing.T) {
	t.Parallel()
	a, b := startNode(t), startNode(t)
	p, url := startPool(t, []string{a.URL(), b.URL()}, &Options{HealthInterval: 50 * time.Millisecond})
	ctx := testCtx(t)
	waitFor(t, "first health check", func() bool { return p.Ready() })

	on := [2][]*websocket.Conn{}
	for range 4 {
		c, i := dialTracked(t, p, url)
		chainCall(t, ctx, c, 1)
		on[i] = append(on[i], c)
	}
	if len(on[0]) != 2 {
		t.Fatalf("clients per node %d/%d, want 2/2", len(on[0]), len(on[1]))
	}

	start := time.Now()
	a.Kill() // no close frames: the gateway must notice the lost TCP connections
	for i, c := range on[0] {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second) // the default ping interval is 20 s
		_, _, err := c.Read(ctx)
		cancel()
		wantClose(t, "client of the killed node", err, websocket.StatusServiceRestart)
		t.Logf("client %d closed %v after the kill", i, time.Since(start))
	}
	if n := p.Nodes()[0]; n.Healthy {
		t.Errorf("killed node still healthy: %+v", n)
	}
	for i := range 2 { // the clients reconnect
		c, got := dialTracked(t, p, url)
		if got != 1 {
			t.Fatalf("reconnect %d went to node %d, want 1", i, got)
		}
		chainCall(t, ctx, c, 2)
	}
	for _, c := range on[1] { // node 1's clients never noticed
		chainCall(t, ctx, c, 3)
	}

	restarted, err := rpctest.Start(&rpctest.Options{Addr: a.Addr(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("restart the node on %s: %v", a.Addr(), err)
	}
	t.Cleanup(func() { restarted.Close() })
	waitFor(t, "restarted node healthy, its old connections gone", func() bool {
		n := p.Nodes()[0]
		return n.Healthy && n.Conns == 0
	})
	c, got := dialTracked(t, p, url)
	if got != 0 {
		t.Errorf("with %v connections a new client went to node %d, want the restarted 0", poolConns(p), got)
	}
	chainCall(t, ctx, c, 4)
}

// TestPoolNodeStallsHandshake: a node that accepts TCP but never answers
// the upgrade costs one dial its HandshakeTimeout; the next node serves.
func TestPoolNodeStallsHandshake(t *testing.T) {
	t.Parallel()
	stalled, live := startNode(t), startNode(t)
	stalled.Stall()
	const timeout = 300 * time.Millisecond
	p, url := startPool(t, []string{stalled.URL(), live.URL()}, &Options{HandshakeTimeout: timeout})
	ctx := testCtx(t)
	var slowest time.Duration
	for i := range 2 { // as in TestPoolNodeDownAtDial, one of these tries the stalled node first
		start := time.Now()
		c, got := dialTracked(t, p, url)
		slowest = max(slowest, time.Since(start))
		if got != 1 {
			t.Fatalf("client %d went to node %d, want the live node 1", i, got)
		}
		chainCall(t, ctx, c, i)
	}
	if slowest < timeout || slowest > timeout+5*time.Second {
		t.Errorf("slowest handshake took %v, want the handshake timeout %v and a little", slowest, timeout)
	}
	n := p.Nodes()[0]
	if n.Healthy || !strings.Contains(n.Reason, "did not complete the WebSocket handshake in time") {
		t.Errorf("stalled node %+v, want unhealthy with a handshake timeout", n)
	}
}

// TestPoolHealth: health checks take a syncing, peerless or lagging node
// out of the pool and return it when it recovers; ReadyHandler reports it.
func TestPoolHealth(t *testing.T) {
	t.Parallel()
	healthOpts := func() *Options {
		return &Options{HealthInterval: 50 * time.Millisecond, Policy: DefaultPolicy()}
	}
	t.Run("syncing", func(t *testing.T) {
		t.Parallel()
		a, b := startNode(t), startNode(t)
		p, url := startPool(t, []string{a.URL(), b.URL()}, healthOpts())
		ctx := testCtx(t)
		a.SetHealth(rpctest.Health{IsSyncing: true, Peers: 3, ShouldHavePeers: true})
		waitFor(t, "syncing node unhealthy", func() bool { return !p.Nodes()[0].Healthy })
		if n := p.Nodes()[0]; n.Reason != "node is syncing" {
			t.Errorf("syncing node %+v, want reason %q", n, "node is syncing")
		}
		for i := range 4 {
			c, got := dialTracked(t, p, url)
			if got != 1 {
				t.Fatalf("client %d went to the syncing node", i)
			}
			chainCall(t, ctx, c, i)
		}
		a.SetHealth(rpctest.Health{Peers: 3, ShouldHavePeers: true})
		waitFor(t, "recovered node healthy", func() bool { return p.Nodes()[0].Healthy })
		if n := p.Nodes()[0]; n.Reason != "" {
			t.Errorf("recovered node %+v, want no reason", n)
		}
		c, got := dialTracked(t, p, url)
		if got != 0 {
			t.Errorf("after recovery a client went to node %d, want 0", got)
		}
		chainCall(t, ctx, c, 5)
	})
	t.Run("block lag", func(t *testing.T) {
		t.Parallel()
		a, b := startNode(t), startNode(t)
		p, _ := startPool(t, []string{a.URL(), b.URL()}, healthOpts()) // MaxBlockLag defaults to 10
		a.SetBestBlock(100)
		waitFor(t, "lagging node unhealthy", func() bool { return !p.Nodes()[1].Healthy })
		got := p.Nodes()
		if !got[0].Healthy || got[0].BestBlock != 100 || !strings.Contains(got[1].Reason, "lags the pool's 100 by more than 10") {
			t.Errorf("nodes %+v, want node 0 healthy at 100 and node 1 lagging", got)
		}
		b.SetBestBlock(95) // within MaxBlockLag
		waitFor(t, "caught-up node healthy", func() bool { return p.Nodes()[1].Healthy })
	})
	t.Run("ReadyHandler", func(t *testing.T) {
		t.Parallel()
		a, b := startNode(t), startNode(t)
		p, _ := startPool(t, []string{a.URL(), b.URL()}, healthOpts())
		ready := httptest.NewServer(p.ReadyHandler())
		t.Cleanup(ready.Close)
		a.SetHealth(rpctest.Health{IsSyncing: true})
		waitFor(t, "node 0 unhealthy", func() bool { return !p.Nodes()[0].Healthy })
		code, st := getReady(t, ready.URL)
		if code != http.StatusOK || !st.Ready || len(st.Nodes) != 2 || st.Nodes[0].Healthy || !st.Nodes[1].Healthy {
			t.Errorf("one node healthy: %d %+v, want 200 ready", code, st)
		}
		b.SetHealth(rpctest.Health{ShouldHavePeers: true}) // and no peers
		waitFor(t, "node 1 unhealthy", func() bool { return !p.Nodes()[1].Healthy })
		code, st = getReady(t, ready.URL)
		if code != http.StatusServiceUnavailable || st.Ready || st.Nodes[0].Reason != "node is syncing" || st.Nodes[1].Reason != "node has no peers" {
			t.Errorf("no node healthy: %d %+v, want 503 with reasons", code, st)
		}
		b.SetHealth(rpctest.Health{})
		waitFor(t, "node 1 healthy", func() bool { return p.Ready() })
		if code, _ := getReady(t, ready.URL); code != http.StatusOK {
			t.Errorf("node 1 recovered: %d, want 200", code)
		}
		if err := p.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if code, st := getReady(t, ready.URL); code != http.StatusServiceUnavailable || st.Ready {
			t.Errorf("after Shutdown: %d %+v, want 503", code, st)
		}
	})
}

type readyStatus struct {
	Ready   bool         `json:"ready"`
	Serving bool         `json:"serving"`
	Nodes   []NodeStatus `json:"nodes"`
}

func getReady(t *testing.T, url string) (int, readyStatus) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st readyStatus
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("readiness body: %v", err)
	}
	return resp.StatusCode, st
}

// TestPoolNodeStopsAnsweringPings: a node that accepts the WebSocket but
// then never reads (so never answers pings) gets its client a 1012 after
// about two ping intervals, and its connection is dropped.
func TestPoolNodeStopsAnsweringPings(t *testing.T) {
	t.Parallel()
	accepted := make(chan *websocket.Conn, 1)
	release := make(chan struct{})
	deaf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		accepted <- c
		<-release // never read while held
	}))
	t.Cleanup(func() {
		close(release)
		deaf.Close()
	})
	const interval = time.Second
	p, url := startPool(t, []string{"ws" + strings.TrimPrefix(deaf.URL, "http")}, &Options{PingInterval: interval})
	c := dial(t, url, nil)
	node := <-accepted
	defer node.CloseNow()

	start := time.Now()
	_, _, err := c.Read(testCtx(t))
	ce := wantClose(t, "client of a deaf node", err, websocket.StatusServiceRestart)
	took := time.Since(start)
	t.Logf("client got %v after %v", ce, took)
	if took < interval || took > 3*interval+5*time.Second {
		t.Errorf("1012 after %v, want about 2 ping intervals of %v", took, interval)
	}
	if n := p.Nodes()[0]; n.Healthy || !strings.Contains(n.Reason, "no answer to keepalive ping") {
		t.Errorf("deaf node %+v, want unhealthy for the ping", n)
	}
	// The gateway dropped its side: the node reads the pings it ignored,
	// then the end of the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := node.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("node read %v after the gateway gave up; want the connection closed", err)
	}
}

// TestWSSUpstream: a node behind wss:// (TLS verified against its own
// certificate) is dialed, spliced, and health-checked over https://.
func TestWSSUpstream(t *testing.T) {
	t.Parallel()
	src, err := certs.NewSelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	node, err := rpctest.Start(&rpctest.Options{TLSConfig: certs.TLSConfig(src), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	roots := x509.NewCertPool()
	roots.AddCert(src.Certificate().Leaf)
	p, url := startProxy(t, node.URL(), &Options{UpstreamTLS: &tls.Config{RootCAs: roots}, HealthInterval: time.Hour, Policy: DefaultPolicy()})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	c.Write(ctx, websocket.MessageText, []byte(callJSON(1, "system_chain")))
	if r := readReply(t, ctx, c); r.Error != nil {
		t.Fatalf("system_chain over wss upstream: %+v", r)
	}
	waitFor(t, "a health check over https", func() bool { return p.Nodes()[0].BestBlock > 0 || slices.Contains(node.Seen(), "system_health") })
	if !strings.HasPrefix(node.URL(), "wss://") || !p.Ready() {
		t.Errorf("node %s, ready %v", node.URL(), p.Ready())
	}

	// An untrusted node certificate is a dial failure, not a splice.
	_, url = startProxy(t, node.URL(), &Options{})
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("node with an untrusted certificate: %v %v, want 502", resp, err)
	}
}

// TestNodeGoingAway: a node that shuts down cleanly (close 1001, as on a
// restart for an upgrade) leaves its clients a 1012, so they reconnect,
// and leaves the pool until it is healthy again.
func TestNodeGoingAway(t *testing.T) {
	t.Parallel()
	a, b := startNode(t), startNode(t)
	p, url := startPool(t, []string{a.URL(), b.URL()}, &Options{HealthInterval: time.Hour})
	ctx := testCtx(t)
	c, on := dialTracked(t, p, url) // the nodes' own counts include the gateway's head subscriptions
	c.Write(ctx, websocket.MessageText, []byte(callJSON(1, "system_chain")))
	readReply(t, ctx, c)
	first := a
	if on == 1 {
		first = b
	}
	first.Close() // close frames 1001 "node shutting down"
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart || !strings.Contains(ce.Reason, "node going away") {
		t.Fatalf("client saw %v, want 1012 node going away", err)
	}
	c2 := dial(t, url, nil)
	c2.Write(ctx, websocket.MessageText, []byte(callJSON(2, "system_chain")))
	if r := readReply(t, ctx, c2); r.Error != nil || p.Nodes()[1-on].Conns != 1 {
		t.Errorf("reconnect: %+v, other node has %d conns, want 1", r, p.Nodes()[1-on].Conns)
	}
}
