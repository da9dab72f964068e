package wssproxy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// carrier returns which of nodes saw method, and the other one.
func carrier(t *testing.T, method string, nodes ...*rpctest.Node) (*rpctest.Node, *rpctest.Node) {
	t.Helper()
	switch {
	case countSeen(nodes[0], method) == 1 && countSeen(nodes[1], method) == 0:
		return nodes[0], nodes[1]
	case countSeen(nodes[1], method) == 1 && countSeen(nodes[0], method) == 0:
		return nodes[1], nodes[0]
	}
	t.Fatalf("nodes saw %d and %d %s, want 1 in all", countSeen(nodes[0], method), countSeen(nodes[1], method), method)
	return nil, nil
}

// TestShareNodeKilled kills the node carrying the shared head
// subscription: its clients keep receiving every head, from the other
// node, on the same connection, the heads produced meanwhile filled in.
func TestShareNodeKilled(t *testing.T) {
	a, b := startNode(t), startNode(t)
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 2}, nil, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const clients = 5
	conns := make([]*websocket.Conn, clients)
	subs := make([]string, clients)
	last := make([]uint64, clients)
	for i := range conns {
		conns[i] = dialWS(t, ctx, url)
		subs[i], last[i] = subscribeHeads(t, ctx, conns[i], i)
	}
	dead, alive := carrier(t, "chain_subscribeNewHeads", a, b)
	step := func() uint64 { // both nodes make the same block
		dead.Advance()
		return alive.Advance()
	}
	for range 2 {
		n := step()
		for i, c := range conns {
			if last[i] = headOf(t, ctx, c, subs[i]); last[i] != n {
				t.Fatalf("client %d: head %d, want %d", i, last[i], n)
			}
		}
	}
	// The other node makes three blocks the clients do not see, then the
	// carrier dies: the new subscription starts at the third, and the
	// first two are filled in from the node.
	var top uint64
	for range 3 {
		top = alive.Advance()
	}
	dead.Kill()
	for i, c := range conns {
		for last[i] < top {
			n := headOf(t, ctx, c, subs[i])
			if n != last[i]+1 && n != last[i] { // a repeat is allowed, a gap is not
				t.Fatalf("client %d: head %d after %d", i, n, last[i])
			}
			last[i] = n
		}
	}
	if got := countSeen(alive, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("surviving node saw %d chain_subscribeNewHeads, want 1", got)
	}
	if got := countSeen(alive, "chain_getHeader"); got != 2 {
		t.Errorf("surviving node saw %d chain_getHeader, want 2 (the missed heads)", got)
	}
	n := alive.Advance()
	for i, c := range conns {
		if got := headOf(t, ctx, c, subs[i]); got != n {
			t.Errorf("client %d: head %d, want %d", i, got, n)
		}
	}
}

// TestShareNodeKilledInFlight: calls that only read are sent again to the
// other node; others are answered with an error carrying their id.
func TestShareNodeKilledInFlight(t *testing.T) {
	a, b := startNode(t), startNode(t)
	p, url := startShared(t, &ShareOptions{ConnsPerNode: 1}, &Options{Policy: AllowAll()}, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	a.Stall()
	// The calls of one batch go to the least loaded connection in turn:
	// each node gets one system_name and one test_echo.
	send(t, ctx, c, `[{"jsonrpc":"2.0","id":1,"method":"system_name","params":[]},`+
		`{"jsonrpc":"2.0","id":2,"method":"system_name","params":[]},`+
		`{"jsonrpc":"2.0","id":3,"method":"test_echo","params":[3]},`+
		`{"jsonrpc":"2.0","id":4,"method":"test_echo","params":[4]}]`)
	waitFor(t, "the stalled node to hold two calls", func() bool {
		p.hub.mu.Lock()
		defer p.hub.mu.Unlock()
		for _, nc := range p.hub.conns {
			if nc.b.host == a.Addr() {
				return len(nc.pending) == 2
			}
		}
		return false
	})
	a.Kill()
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var batch []wsMessage
	if err := json.Unmarshal(msg, &batch); err != nil {
		t.Fatalf("reply %s: %v", msg, err)
	}
	got := map[string]wsMessage{}
	for _, r := range batch {
		got[string(r.ID)] = r
	}
	for _, id := range []string{"1", "2"} {
		if r := got[id]; r.Error != nil || string(r.Result) != `"wssgate rpctest"` {
			t.Errorf("system_name %s (read-only, retried): %s", id, msg)
		}
	}
	var lost int
	for _, id := range []string{"3", "4"} {
		if r, ok := got[id]; ok && r.Error != nil && r.Error.Code == -32603 {
			lost++
		}
	}
	if lost != 1 || len(batch) != 4 {
		t.Errorf("want one test_echo answered with -32603 and its id: %s", msg)
	}
}

// TestShareHealthHeads: the health checks follow each node's heads over
// the hub's connections, so the node sees no connection beyond them, and
// the clients' shared head subscriptions ride on theirs.
func TestShareHealthHeads(t *testing.T) {
	node := startNode(t)
	p, url := startShared(t, &ShareOptions{ConnsPerNode: 2}, &Options{Policy: DefaultPolicy(), HealthInterval: time.Hour}, node)
	waitFor(t, "the head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	best, _ := node.BestBlock()
	conns := make([]*websocket.Conn, 3)
	subs := make([]string, 3)
	for i := range conns {
		conns[i] = dialWS(t, ctx, url)
		var first uint64
		if subs[i], first = subscribeHeads(t, ctx, conns[i], i); first != best {
			t.Errorf("client %d: first head %d, want %d", i, first, best)
		}
	}
	var n uint64
	for range 3 {
		n = node.Advance()
		for i, c := range conns {
			if got := headOf(t, ctx, c, subs[i]); got != n {
				t.Errorf("client %d: head %d, want %d", i, got, n)
			}
		}
	}
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("node saw %d chain_subscribeNewHeads, want 1 (the health checks', shared)", got)
	}
	for _, c := range conns {
		c.Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, "the clients to leave", func() bool { return p.Conns() == 0 })
	n = node.Advance()
	waitFor(t, "the health checks to see the new head", func() bool {
		s := p.Nodes()[0]
		return s.BestBlock == n && s.FinalizedBlock == n
	})
	if got := node.Conns(); got != 2 {
		t.Errorf("node has %d connections, want 2 (the health checks' heads ride on them)", got)
	}
	if got := countSeen(node, "chain_unsubscribeNewHeads"); got != 0 {
		t.Errorf("the last client's leaving ended the health checks' subscription (%d unsubscribes)", got)
	}
}

// TestShareOwnSubscriptionNodeKilled: a client's own subscription with no
// final event is ended by closing the client with 1012, as splice mode does
// when the node goes away; it is never left silent.
func TestShareOwnSubscriptionNodeKilled(t *testing.T) {
	a, b := startNode(t), startNode(t)
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 1}, &Options{Policy: AllowAll()}, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	// With parameters it is not the shared one: the client's own.
	send(t, ctx, c, `{"jsonrpc":"2.0","id":1,"method":"chain_subscribeNewHeads","params":["own"]}`)
	sub := string(readMessage(t, ctx, c).Result)
	headOf(t, ctx, c, sub)
	dead, _ := carrier(t, "chain_subscribeNewHeads", a, b)
	dead.Kill()
	_, _, err := c.Read(ctx)
	wantClose(t, "own subscription's node killed", err, websocket.StatusServiceRestart)
}
