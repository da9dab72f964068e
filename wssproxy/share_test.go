package wssproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// startShared serves a shared-mode proxy for nodes and waits until each
// node connection is up and knows the chain's genesis.
func startShared(t *testing.T, share *ShareOptions, opts *Options, nodes ...*rpctest.Node) (*Proxy, string) {
	t.Helper()
	if opts == nil {
		opts = &Options{Policy: DefaultPolicy()}
	}
	if share == nil {
		share = &ShareOptions{}
	}
	opts.Share = share
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	p, url := startPool(t, urls, opts)
	want := p.opts.Share.ConnsPerNode * len(nodes)
	waitFor(t, "node connections", func() bool {
		p.hub.mu.Lock()
		defer p.hub.mu.Unlock()
		n := 0
		for _, nc := range p.hub.conns {
			if nc.genesis != "" {
				n++
			}
		}
		return n == want
	})
	return p, url
}

func dialWS(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func send(t *testing.T, ctx context.Context, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// wsMessage is a reply or a notification.
type wsMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Params struct {
		Subscription json.RawMessage `json:"subscription"`
		Result       json.RawMessage `json:"result"`
	} `json:"params"`
}

func readMessage(t *testing.T, ctx context.Context, c *websocket.Conn) wsMessage {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m wsMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message %s: %v", b, err)
	}
	return m
}

// subscribeHeads subscribes c to new heads and returns its subscription
// id and the first head's number.
func subscribeHeads(t *testing.T, ctx context.Context, c *websocket.Conn, id int) (string, uint64) {
	t.Helper()
	send(t, ctx, c, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"chain_subscribeNewHeads","params":[]}`, id))
	r := readMessage(t, ctx, c)
	if r.Error != nil || string(r.ID) != strconv.Itoa(id) {
		t.Fatalf("subscribe: %+v", r)
	}
	return string(r.Result), headOf(t, ctx, c, string(r.Result))
}

// headOf reads the next notification and returns its head's number,
// checking it is for subscription sub.
func headOf(t *testing.T, ctx context.Context, c *websocket.Conn, sub string) uint64 {
	t.Helper()
	m := readMessage(t, ctx, c)
	if m.Method != "chain_newHead" || string(m.Params.Subscription) != sub {
		t.Fatalf("got %+v, want a chain_newHead for %s", m, sub)
	}
	var h struct{ Number string }
	json.Unmarshal(m.Params.Result, &h)
	n, err := strconv.ParseUint(h.Number, 0, 64)
	if err != nil {
		t.Fatalf("head number %q", h.Number)
	}
	return n
}

func countSeen(n *rpctest.Node, method string) int {
	c := 0
	for _, m := range n.Seen() {
		if m == method {
			c++
		}
	}
	return c
}

func TestShareCallsKeepClientIDs(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 2}, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			c := dialWS(t, ctx, url)
			for _, id := range []string{`7`, `"seven"`, `null`, `18446744073709551615`} {
				send(t, ctx, c, `{"jsonrpc":"2.0","id":`+id+`,"method":"test_echo","params":[`+strconv.Itoa(i)+`]}`)
				r := readMessage(t, ctx, c)
				if string(r.ID) != id || string(r.Result) != "["+strconv.Itoa(i)+"]" {
					t.Errorf("client %d: reply %s %s, want id %s result [%d]", i, r.ID, r.Result, id, i)
				}
			}
			// A batch with a call the policy refuses: one reply, both ids.
			send(t, ctx, c, `[{"jsonrpc":"2.0","id":1,"method":"author_rotateKeys"},{"jsonrpc":"2.0","id":2,"method":"system_name"}]`)
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			var batch []wsMessage
			if err := json.Unmarshal(b, &batch); err != nil || len(batch) != 2 {
				t.Errorf("batch reply %s", b)
				return
			}
			slices.SortFunc(batch, func(a, b wsMessage) int { return strings.Compare(string(a.ID), string(b.ID)) })
			if batch[0].Error == nil || batch[0].Error.Code != -32601 || string(batch[1].Result) != `"wssgate rpctest"` {
				t.Errorf("batch reply %s", b)
			}
		})
	}
	wg.Wait()
	if got := node.Conns(); got != 2 {
		t.Errorf("node has %d connections, want 2", got)
	}
	if got := countSeen(node, "author_rotateKeys"); got != 0 {
		t.Errorf("node saw author_rotateKeys %d times", got)
	}
}

func TestShareNewHeads(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const clients = 20
	conns := make([]*websocket.Conn, clients)
	subs := make([]string, clients)
	first := make([]uint64, clients)
	var wg sync.WaitGroup
	for i := range clients { // all at once: one node subscription
		wg.Go(func() {
			conns[i] = dialWS(t, ctx, url)
			subs[i], first[i] = subscribeHeads(t, ctx, conns[i], i)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Fatalf("node saw %d chain_subscribeNewHeads, want 1", got)
	}
	if sorted := slices.Sorted(slices.Values(subs)); len(slices.Compact(sorted)) != clients {
		t.Errorf("subscription ids are not distinct: %v", subs)
	}
	best, _ := node.BestBlock()
	for i := range clients {
		if first[i] != best {
			t.Errorf("client %d first head %d, want %d", i, first[i], best)
		}
	}
	// A late joiner gets the latest head at once.
	late := dialWS(t, ctx, url)
	lateSub, lateFirst := subscribeHeads(t, ctx, late, 99)
	if lateFirst != best {
		t.Errorf("late joiner's first head %d, want %d", lateFirst, best)
	}
	for range 3 {
		n := node.Advance()
		for i, c := range append(slices.Clone(conns), late) {
			sub := lateSub
			if i < clients {
				sub = subs[i]
			}
			if got := headOf(t, ctx, c, sub); got != n {
				t.Errorf("client %d got head %d, want %d", i, got, n)
			}
		}
	}
	// Half leave: nothing ends for the others; the last one ends it.
	for i := range clients / 2 {
		conns[i].Close(websocket.StatusNormalClosure, "")
	}
	send(t, ctx, late, `{"jsonrpc":"2.0","id":5,"method":"chain_unsubscribeNewHeads","params":[`+lateSub+`]}`)
	if r := readMessage(t, ctx, late); string(r.Result) != "true" {
		t.Errorf("unsubscribe: %+v", r)
	}
	n := node.Advance()
	for i := clients / 2; i < clients; i++ {
		if got := headOf(t, ctx, conns[i], subs[i]); got != n {
			t.Errorf("client %d got head %d, want %d", i, got, n)
		}
	}
	if got := countSeen(node, "chain_unsubscribeNewHeads"); got != 0 {
		t.Errorf("node saw %d unsubscribes while clients remain", got)
	}
	for i := clients / 2; i < clients; i++ {
		conns[i].Close(websocket.StatusNormalClosure, "")
	}
	waitFor(t, "the node unsubscribe", func() bool { return countSeen(node, "chain_unsubscribeNewHeads") == 1 })
}

func TestShareStorageKeysNormalised(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i, keys := range []string{`["0xAB","0xcd"]`, `[ "0xcd" , "0xab","0xAB" ]`, `{"keys":["0xcd","0xab"]}`} {
		c := dialWS(t, ctx, url)
		send(t, ctx, c, `{"jsonrpc":"2.0","id":1,"method":"state_subscribeStorage","params":`+wrapParams(keys)+`}`)
		if r := readMessage(t, ctx, c); r.Error != nil {
			t.Fatalf("subscribe %d: %+v", i, r.Error)
		}
		if m := readMessage(t, ctx, c); m.Method != "state_storage" {
			t.Fatalf("first notification %+v", m)
		}
	}
	if got := countSeen(node, "state_subscribeStorage"); got != 1 {
		t.Errorf("node saw %d state_subscribeStorage, want 1", got)
	}
	c := dialWS(t, ctx, url)
	send(t, ctx, c, `{"jsonrpc":"2.0","id":1,"method":"state_subscribeStorage","params":[["0xee"]]}`)
	readMessage(t, ctx, c)
	waitFor(t, "a second subscription for other keys", func() bool { return countSeen(node, "state_subscribeStorage") == 2 })
}

// wrapParams puts a key list in positional params; named params pass as is.
func wrapParams(keys string) string {
	if strings.HasPrefix(keys, "{") {
		return keys
	}
	return "[" + keys + "]"
}

func TestShareOwnSubscriptions(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		c := dialWS(t, ctx, url)
		send(t, ctx, c, `{"jsonrpc":"2.0","id":"x","method":"author_submitAndWatchExtrinsic","params":["0x00"]}`)
		r := readMessage(t, ctx, c)
		if r.Error != nil || string(r.ID) != `"x"` {
			t.Fatalf("watch %d: %+v", i, r)
		}
		var statuses []string
		for range 3 {
			m := readMessage(t, ctx, c)
			if string(m.Params.Subscription) != string(r.Result) {
				t.Fatalf("notification for %s, want %s", m.Params.Subscription, r.Result)
			}
			statuses = append(statuses, string(m.Params.Result))
		}
		if !strings.Contains(statuses[2], "finalized") {
			t.Errorf("statuses %v", statuses)
		}
	}
	if got := countSeen(node, "author_submitAndWatchExtrinsic"); got != 3 {
		t.Errorf("node saw %d watches, want 3 (not shared)", got)
	}
}

func TestShareSubscriptionCap(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, &Options{Policy: DefaultPolicy(), MaxSubscriptions: 2}, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	sub, _ := subscribeHeads(t, ctx, c, 1)
	send(t, ctx, c, `{"jsonrpc":"2.0","id":2,"method":"chain_subscribeFinalizedHeads","params":[]}`)
	if r := readMessage(t, ctx, c); r.Error != nil {
		t.Fatal(r.Error)
	}
	readMessage(t, ctx, c) // its first head
	send(t, ctx, c, `{"jsonrpc":"2.0","id":3,"method":"chain_subscribeAllHeads","params":[]}`)
	if r := readMessage(t, ctx, c); r.Error == nil || r.Error.Code != -32005 {
		t.Fatalf("third subscription: %+v, want -32005", r)
	}
	send(t, ctx, c, `{"jsonrpc":"2.0","id":4,"method":"chain_unsubscribeNewHeads","params":[`+sub+`]}`)
	if r := readMessage(t, ctx, c); string(r.Result) != "true" {
		t.Fatalf("unsubscribe: %+v", r)
	}
	send(t, ctx, c, `{"jsonrpc":"2.0","id":5,"method":"chain_subscribeAllHeads","params":[]}`)
	if r := readMessage(t, ctx, c); r.Error != nil {
		t.Fatalf("subscription after an unsubscribe: %+v", r.Error)
	}
}

func TestShareSlowClientClosed(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, &ShareOptions{ClientBacklog: 4}, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	fast := dialWS(t, ctx, url)
	fastSub, _ := subscribeHeads(t, ctx, fast, 1)
	slow := dialWS(t, ctx, url)
	subscribeHeads(t, ctx, slow, 1)
	// The slow client asks for 64 MiB and reads nothing: its socket fills,
	// replies pile up in the gateway past the bound of 4.
	for i := range 64 {
		send(t, ctx, slow, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"test_big","params":[1048576]}`, i+10))
	}
	// Meanwhile the fast one gets every head.
	for range 3 {
		n := node.Advance()
		if got := headOf(t, ctx, fast, fastSub); got != n {
			t.Fatalf("fast client got head %d, want %d", got, n)
		}
	}
	var lastErr *wsMessage
	for {
		_, b, err := slow.Read(ctx)
		if err != nil {
			wantClose(t, "slow client", err, websocket.StatusPolicyViolation)
			break
		}
		var m wsMessage
		if json.Unmarshal(b, &m) == nil && m.Error != nil {
			lastErr = &m
		}
	}
	if lastErr == nil || lastErr.Error.Code != -32005 || !strings.Contains(lastErr.Error.Message, "too slow") {
		t.Errorf("slow client's last error %+v, want -32005 client too slow", lastErr)
	}
}

func TestShareOptionsErrors(t *testing.T) {
	for _, field := range []string{"ConnsPerNode", "InFlight", "Queue", "ClientQueue", "ClientBacklog"} {
		s := &ShareOptions{}
		switch field {
		case "ConnsPerNode":
			s.ConnsPerNode = -1
		case "InFlight":
			s.InFlight = -1
		case "Queue":
			s.Queue = -1
		case "ClientQueue":
			s.ClientQueue = -1
		case "ClientBacklog":
			s.ClientBacklog = -1
		}
		_, err := New("ws://127.0.0.1:1", &Options{Share: s})
		if err == nil || !strings.Contains(err.Error(), "Options.Share."+field) {
			t.Errorf("%s = -1: error %v, want one naming it", field, err)
		}
	}
}

// TestShareOutstandingBound: calls that wait without taking a queue slot
// (joining the same call in flight) are bounded per connection too.
func TestShareOutstandingBound(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, best := node.BestBlock()
	c := dialWS(t, ctx, url)
	node.Stall()
	defer node.Kill()
	batch := func(from, n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"chain_getBlock","params":["%s"]}`, from+i, best)
		}
		return b.String() + "]"
	}
	send(t, ctx, c, batch(0, 600))
	send(t, ctx, c, batch(600, MaxTrackedCalls-600))
	send(t, ctx, c, fmt.Sprintf(`{"jsonrpc":"2.0","id":"over","method":"chain_getBlock","params":["%s"]}`, best))
	r := readMessage(t, ctx, c)
	if string(r.ID) != `"over"` || r.Error == nil || r.Error.Code != -32005 {
		t.Errorf("call %d: %+v, want -32005", MaxTrackedCalls+1, r)
	}
}

func TestShareShutdown(t *testing.T) {
	node := startNode(t)
	p, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	subscribeHeads(t, ctx, c, 1)
	if got := p.Conns(); got != 1 {
		t.Errorf("Conns() = %d, want 1", got)
	}
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(ctx) }()
	_, _, err := c.Read(ctx)
	wantClose(t, "shutdown", err, websocket.StatusGoingAway)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	waitFor(t, "the node connections to close", func() bool { return node.Conns() == 0 })
}

// TestShareSubscriptionBound: without MaxSubscriptions, a client still
// cannot hold more than the node's own cap of shares.
func TestShareSubscriptionBound(t *testing.T) {
	node := startNode(t)
	// A backlog for each share's first head at once.
	_, url := startShared(t, &ShareOptions{ClientBacklog: 4 * shareMaxSubs}, &Options{Policy: DefaultPolicy()}, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	var b strings.Builder
	b.WriteString("[")
	for i := range shareMaxSubs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"chain_subscribeNewHeads","params":[]}`, i)
	}
	// Two batches: a batch holds at most 1,000 calls.
	msg := b.String()
	cut := strings.Index(msg, `{"jsonrpc":"2.0","id":900,`)
	send(t, ctx, c, msg[:cut-1]+"]")
	send(t, ctx, c, "["+msg[cut:]+"]")
	send(t, ctx, c, `{"jsonrpc":"2.0","id":"over","method":"chain_subscribeNewHeads","params":[]}`)
	for {
		_, m, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(m), `"over"`) {
			continue // the batches' replies, the heads
		}
		var r wsMessage
		json.Unmarshal(m, &r)
		if r.Error == nil || r.Error.Code != -32005 {
			t.Errorf("subscription %d: %s, want -32005", shareMaxSubs+1, m)
		}
		break
	}
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("node saw %d subscriptions, want 1", got)
	}
}
