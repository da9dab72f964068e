package wssproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/ratelimit"
)

// startNode starts the fake Substrate node for a test.
func startNode(t *testing.T) *rpctest.Node {
	t.Helper()
	n, err := rpctest.Start(&rpctest.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// rpcReply is a JSON-RPC reply as a test reads it.
type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func callJSON(id int, method string) string {
	return fmt.Sprintf(`{"id":%d,"jsonrpc":"2.0","method":%q,"params":[]}`, id, method)
}

func readReply(t *testing.T, ctx context.Context, c *websocket.Conn) rpcReply {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r rpcReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	return r
}

func readBatch(t *testing.T, ctx context.Context, c *websocket.Conn) map[string]rpcReply {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return parseBatch(t, b)
}

func parseBatch(t *testing.T, b []byte) map[string]rpcReply {
	t.Helper()
	var rs []rpcReply
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatalf("batch reply %s: %v", b, err)
	}
	m := map[string]rpcReply{}
	for _, r := range rs {
		m[string(r.ID)] = r
	}
	return m
}

// TestDefaultPolicyWebSocket: every unsafe method is answered by the
// gateway with an error naming it, and the node never sees one.
func TestDefaultPolicyWebSocket(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	for i, m := range UnsafeMethods {
		c.Write(ctx, websocket.MessageText, []byte(callJSON(i, m)))
		r := readReply(t, ctx, c)
		if r.Error == nil || r.Error.Code != -32601 || string(r.ID) != fmt.Sprint(i) ||
			!strings.Contains(r.Error.Message, m) || !strings.Contains(r.Error.Message, "not allowed") {
			t.Errorf("%s: reply %+v, want -32601 naming the method with id %d", m, r, i)
		}
	}
	c.Write(ctx, websocket.MessageText, []byte(callJSON(999, "system_chain")))
	if r := readReply(t, ctx, c); r.Error != nil || string(r.ID) != "999" {
		t.Errorf("system_chain: %+v", r)
	}
	if diff := cmp.Diff([]string{"system_chain"}, node.Seen()); diff != "" {
		t.Errorf("node saw (-want +got):\n%s", diff)
	}
}

func TestPolicyBatchWebSocket(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	c := dial(t, url, nil)
	ctx := testCtx(t)

	mixed := "[" + callJSON(1, "system_chain") + "," + callJSON(2, "author_rotateKeys") + "," + callJSON(3, "system_name") + "]"
	c.Write(ctx, websocket.MessageText, []byte(mixed))
	got := readBatch(t, ctx, c)
	if len(got) != 3 || got["1"].Error != nil || got["3"].Error != nil || got["2"].Error == nil || got["2"].Error.Code != -32601 {
		t.Errorf("mixed batch reply: %+v; want 1 and 3 answered by the node, 2 refused", got)
	}

	denied := "[" + callJSON(4, "author_insertKey") + "," + callJSON(5, "system_peers") + "]"
	c.Write(ctx, websocket.MessageText, []byte(denied))
	got = readBatch(t, ctx, c)
	if len(got) != 2 || got["4"].Error == nil || got["5"].Error == nil {
		t.Errorf("all-denied batch reply: %+v", got)
	}
	for _, bad := range []string{"{not json", "[]", `{"id":7,"jsonrpc":"2.0","method":1}`} {
		c.Write(ctx, websocket.MessageText, []byte(bad))
		if r := readReply(t, ctx, c); r.Error == nil {
			t.Errorf("%s: reply %+v, want an error", bad, r)
		}
	}
	if diff := cmp.Diff([]string{"system_chain", "system_name"}, node.Seen()); diff != "" {
		t.Errorf("node saw (-want +got):\n%s", diff)
	}
}

func TestPolicyHTTP(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	base := "http" + strings.TrimPrefix(url, "ws")
	post := func(body string) []byte {
		resp, err := http.Post(base, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
		}
		return b
	}
	var r rpcReply
	json.Unmarshal(post(callJSON(1, "author_rotateKeys")), &r)
	if r.Error == nil || r.Error.Code != -32601 || string(r.ID) != "1" {
		t.Errorf("single unsafe POST: %+v", r)
	}
	got := parseBatch(t, post("["+callJSON(2, "system_chain")+","+callJSON(3, "author_hasKey")+"]"))
	if len(got) != 2 || got["2"].Error != nil || got["3"].Error == nil {
		t.Errorf("mixed batch POST: %+v", got)
	}
	if diff := cmp.Diff([]string{"system_chain"}, node.Seen()); diff != "" {
		t.Errorf("node saw (-want +got):\n%s", diff)
	}
}

// TestMessageFlood: 1,000 pipelined calls against a burst of 100 (and a
// rate too slow to refill during the test): exactly 100 reach the node,
// the other 900 are answered -32005 with their own ids.
func TestMessageFlood(t *testing.T) {
	t.Parallel()
	const calls, burst = 1000, 100
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MessageRate: 0.001, MessageBurst: burst})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	go func() {
		for i := range calls {
			c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":%d,"jsonrpc":"2.0","method":"test_echo","params":[%d]}`, i, i)))
		}
	}()
	var ok, limited []int
	for range calls {
		r := readReply(t, ctx, c)
		var id int
		json.Unmarshal(r.ID, &id)
		switch {
		case r.Error == nil:
			ok = append(ok, id)
		case r.Error.Code == -32005 && strings.Contains(r.Error.Message, "retry in"):
			limited = append(limited, id)
		default:
			t.Fatalf("unexpected reply %+v", r)
		}
	}
	sort.Ints(ok)
	sort.Ints(limited)
	if len(ok) != burst || len(limited) != calls-burst || ok[burst-1] != burst-1 || limited[0] != burst {
		t.Errorf("%d calls answered by the node (first %v), %d refused; want exactly the first %d through", len(ok), ok[:min(3, len(ok))], len(limited), burst)
	}
	if n := len(node.Seen()); n != burst {
		t.Errorf("node saw %d calls, want %d", n, burst)
	}
}

// TestMessageFloodClose: a client far over its limit is closed with 1008.
func TestMessageFloodClose(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MessageRate: 0.001, MessageBurst: 5, MaxRefusedCalls: 20})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	go func() {
		for i := range 100 {
			if c.Write(ctx, websocket.MessageText, []byte(callJSON(i, "test_echo"))) != nil {
				return
			}
		}
	}()
	refused, answered := 0, 0
	var err error
	for {
		var b []byte
		if _, b, err = c.Read(ctx); err != nil {
			break
		}
		var r rpcReply
		json.Unmarshal(b, &r)
		if r.Error != nil && r.Error.Code == -32005 {
			refused++
		} else {
			answered++ // the node's replies may or may not beat the close
		}
	}
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("client saw %v, want 1008", err)
	}
	if refused != 20 || answered > 5 {
		t.Errorf("got %d refusals and %d node replies before the close, want 20 and at most 5", refused, answered)
	}
}

func TestMessageDelay(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MessageRate: 50, MessageBurst: 1, MessageLimitDelay: 5 * time.Second})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	for i := range 5 {
		c.Write(ctx, websocket.MessageText, []byte(callJSON(i, "test_echo")))
	}
	for range 5 {
		if r := readReply(t, ctx, c); r.Error != nil {
			t.Errorf("delay mode refused a call: %+v", r)
		}
	}
}

// TestClientMessageLimit: the per-client limit is shared by a client's
// connections.
func TestClientMessageLimit(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), ClientMessageLimit: ratelimit.NewBuckets(0.001, 10)})
	ctx := testCtx(t)
	refused := 0
	for range 2 {
		c := dial(t, url, nil)
		for i := range 6 {
			c.Write(ctx, websocket.MessageText, []byte(callJSON(i, "test_echo")))
			if r := readReply(t, ctx, c); r.Error != nil {
				refused++
			}
		}
	}
	if refused != 2 {
		t.Errorf("%d of 12 calls refused, want 2 (burst 10 shared by both connections)", refused)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MaxSubscriptions: 2})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	var subIDs []string
	// Replies and the first notification of each subscription interleave:
	// read until the reply with the wanted id.
	await := func(id string) rpcReply {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var r rpcReply
			json.Unmarshal(b, &r)
			if string(r.ID) == id {
				return r
			}
		}
	}
	for i := 1; i <= 3; i++ {
		c.Write(ctx, websocket.MessageText, []byte(callJSON(i, "chain_subscribeNewHeads")))
		r := await(fmt.Sprint(i))
		if i <= 2 {
			if r.Error != nil {
				t.Fatalf("subscription %d refused: %+v", i, r)
			}
			subIDs = append(subIDs, string(r.Result))
		} else if r.Error == nil || r.Error.Code != -32005 {
			t.Errorf("third subscription: %+v, want -32005", r)
		}
	}
	c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"id":10,"jsonrpc":"2.0","method":"chain_unsubscribeNewHeads","params":[%s]}`, subIDs[0])))
	if r := await("10"); string(r.Result) != "true" {
		t.Fatalf("unsubscribe: %+v", r)
	}
	c.Write(ctx, websocket.MessageText, []byte(callJSON(11, "chain_subscribeNewHeads")))
	if r := await("11"); r.Error != nil {
		t.Errorf("subscription after an unsubscribe refused: %+v", r)
	}
}

// TestHandshakeRate: 30 handshakes in a burst from one client: exactly
// the burst passes, the rest get 429 with Retry-After.
func TestHandshakeRate(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{RequestLimit: ratelimit.NewBuckets(0.001, 5)})
	ctx := testCtx(t)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			c, resp, err := websocket.Dial(ctx, url, nil)
			status := 101
			if err != nil {
				status = resp.StatusCode
				if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
					t.Errorf("429 without a Retry-After: %q", ra)
				}
			} else {
				c.CloseNow()
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if diff := cmp.Diff(map[int]int{101: 5, 429: 25}, statuses); diff != "" {
		t.Errorf("handshake outcomes (-want +got):\n%s", diff)
	}
}

func TestConnLimits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		conns  *ratelimit.Conns
		status int
	}{
		{"per client", &ratelimit.Conns{PerKey: 50}, http.StatusTooManyRequests},
		{"total", &ratelimit.Conns{Total: 50}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newEchoNode(t, nil)
			p, url := startProxy(t, node.URL(), &Options{ConnLimit: tt.conns})
			ctx := testCtx(t)
			var open []*websocket.Conn
			for range 50 {
				open = append(open, dial(t, url, nil))
			}
			_, resp, err := websocket.Dial(ctx, url, nil)
			if err == nil || resp.StatusCode != tt.status || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("51st connection: %v %v, want %d with Retry-After", resp, err, tt.status)
			}
			if got := len(node.Headers()); got != 50 {
				t.Errorf("node saw %d handshakes, want 50: a refused one must not be dialed", got)
			}
			open[0].Close(websocket.StatusNormalClosure, "")
			waitFor(t, "a slot to free", func() bool { return p.Conns() == 49 })
			dial(t, url, nil)
		})
	}
}

// TestSpoofedForwardedFor: an untrusted client cannot pick its own key by
// sending X-Forwarded-For; behind a trusted proxy the header is the key.
func TestSpoofedForwardedFor(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		want    map[int]int
	}{
		{"untrusted peer: header ignored, one shared bucket", nil, map[int]int{101: 1, 429: 3}},
		{"trusted peer: each forwarded client has its own bucket", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[int]int{101: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newEchoNode(t, nil)
			_, url := startProxy(t, node.URL(), &Options{TrustedProxies: tt.trusted, RequestLimit: ratelimit.NewBuckets(0.001, 1)})
			got := map[int]int{}
			for _, xff := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"} {
				c, resp, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {xff}}})
				if err != nil {
					got[resp.StatusCode]++
					continue
				}
				got[101]++
				c.CloseNow()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}
