package wssproxy

// The attacks of issue 10, tried against the real gateway and the test
// node, which reads ids the way jsonrpsee does (null, u64 or string; any
// other id makes the call a notification it never answers; string ids come
// back decoded and encoded again).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// liveHeap is the heap's live bytes after a full collection, read with
// runtime/metrics.
func liveHeap() uint64 {
	runtime.GC() // twice: the first moves pooled buffers to the victim cache
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// pinningBatch is the batch that made the gateway hold a refusal with a
// huge id until the node answered an id it never answers (-1).
func pinningBatch(idBytes int) []byte {
	big := strings.Repeat("x", idBytes)
	return []byte(`[{"jsonrpc":"2.0","id":-1,"method":"chain_getHeader","params":[]},` +
		`{"jsonrpc":"2.0","id":"` + big + `","method":"author_insertKey","params":["aura","seed","0x00"]}]`)
}

// sendPinning sends n pinning batches on c and reads the gateway's n
// answers: the refusal alone, at once, with a null id since the id is
// over MaxIDLength.
func sendPinning(ctx context.Context, t *testing.T, c *websocket.Conn, n, idBytes int) {
	msg := pinningBatch(idBytes)
	for i := range n {
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Error(err)
			return
		}
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		var rs []rpcReply
		if err := json.Unmarshal(b, &rs); err != nil || len(rs) != 1 || rs[0].Error == nil ||
			rs[0].Error.Code != -32600 || string(rs[0].ID) != "null" {
			t.Errorf("batch %d answered %.200s, want one -32600 refusal with a null id", i, b)
			return
		}
	}
}

func TestPinningAttack(t *testing.T) {
	// Not parallel: it measures the heap.
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MaxSubscriptions: 8})
	// Hundreds of MiB pass through the race detector's scanner: a bound
	// for a slow machine, not a speed target.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("one connection, 40 batches with 5 MiB ids", func(t *testing.T) {
		c := dial(t, url, nil)
		before := liveHeap()
		sendPinning(ctx, t, c, 40, 5<<20)
		after := liveHeap() // c is still open: nothing it sent may be held
		grew := int64(after) - int64(before)
		t.Logf("live heap grew by %d KiB with the connection open", grew>>10)
		if grew > 16<<20 {
			t.Errorf("live heap grew by %d MiB, want under 16 MiB", grew>>20)
		}
		c.CloseNow()
	})
	t.Run("50 connections, 2 batches each with 1 MiB ids", func(t *testing.T) {
		conns := make([]*websocket.Conn, 50)
		for i := range conns {
			conns[i] = dial(t, url, nil)
		}
		before := liveHeap()
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() { sendPinning(ctx, t, c, 2, 1<<20) })
		}
		wg.Wait()
		after := liveHeap()
		grew := int64(after) - int64(before)
		t.Logf("live heap grew by %d KiB with 50 connections open", grew>>10)
		if grew > 64<<20 {
			t.Errorf("live heap grew by %d MiB, want under 64 MiB", grew>>20)
		}
		for _, c := range conns {
			c.CloseNow()
		}
	})
}

// replies reads messages from c until it has the replies to want calls,
// skipping notifications, and returns them in arrival order; batch
// replies are flattened.
func replies(ctx context.Context, t *testing.T, c *websocket.Conn, want int) []rpcReply {
	t.Helper()
	var got []rpcReply
	for len(got) < want {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d replies: %v", len(got), want, err)
		}
		var rs []json.RawMessage
		if b[0] == '[' {
			if err := json.Unmarshal(b, &rs); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		} else {
			rs = []json.RawMessage{b}
		}
		for _, raw := range rs {
			var probe struct {
				Method string          `json:"method"`
				ID     json.RawMessage `json:"id"`
			}
			json.Unmarshal(raw, &probe)
			if probe.Method != "" && probe.ID == nil {
				continue // a notification
			}
			var r rpcReply
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			got = append(got, r)
		}
	}
	return got
}

// tally counts successful replies and -32005 refusals.
func tally(t *testing.T, rs []rpcReply) (ok, limited int) {
	t.Helper()
	for _, r := range rs {
		switch {
		case r.Error == nil:
			ok++
		case r.Error.Code == -32005:
			limited++
		}
	}
	return ok, limited
}

func TestSubscriptionCapVariants(t *testing.T) {
	t.Parallel()
	const max = 2
	sub := func(id, method string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":%q,"params":[]}`, id, method)
	}
	tests := []struct {
		name     string
		msgs     []string
		calls    int // replies to read
		wantOK   int
		wantDeny int // -32005 answers
	}{
		{"alias subscribe_newHead", repeat(6, func(i int) string { return sub(fmt.Sprint(i), "subscribe_newHead") }), 6, max, 4},
		{"legacy alias chain_subscribeNewHead", repeat(6, func(i int) string { return sub(fmt.Sprint(i), "chain_subscribeNewHead") }), 6, max, 4},
		{"one id reused six times", repeat(6, func(int) string { return sub("1", "chain_subscribeNewHeads") }), 6, max, 4},
		{"one id six times in a batch", []string{"[" + strings.Join(repeat(6, func(int) string { return sub("7", "chain_subscribeAllHeads") }), ",") + "]"}, 6, max, 4},
		{"subscribes next to a refused call", []string{"[" + sub("1", "author_insertKey") + "," +
			strings.Join(repeat(5, func(i int) string { return sub(fmt.Sprint(i+2), "state_subscribeRuntimeVersion") }), ",") + "]"}, 6, max, 3},
		{"string ids the node re-encodes", repeat(6, func(int) string { return sub(`"\u0061"`, "chain_subscribeFinalizedHeads") }), 6, max, 4},
		// The test node knows no such method and answers errors; in one
		// batch, two are in flight when the other four are judged.
		{"a chain's own subscription method", []string{"[" + strings.Join(repeat(6, func(i int) string { return sub(fmt.Sprint(i), "mychain_subscribeThings") }), ",") + "]"}, 6, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := startNode(t)
			_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MaxSubscriptions: max})
			c := dial(t, url, nil)
			ctx := testCtx(t)
			for _, m := range tt.msgs {
				if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			ok, denied := tally(t, replies(ctx, t, c, tt.calls))
			if ok != tt.wantOK || denied != tt.wantDeny {
				t.Errorf("%d subscriptions opened and %d refused -32005, want %d and %d", ok, denied, tt.wantOK, tt.wantDeny)
			}
		})
	}
}

func repeat(n int, f func(i int) string) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = f(i)
	}
	return s
}

// TestRestoredIDs: a tracked call's reply carries the client's id byte for
// byte, although the node saw the gateway's id, and an id written like a
// gateway id passes through untouched.
func TestRestoredIDs(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MaxSubscriptions: 4})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	ids := []string{`"\u0061"`, `null`, `18446744073709551615`, `"wg0000000000000000.1"`}
	for _, id := range ids {
		c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":`+id+`,"method":"chain_subscribeNewHeads"}`))
	}
	var got []string
	for _, r := range replies(ctx, t, c, len(ids)) {
		if r.Error != nil {
			t.Errorf("reply %s: %+v", r.ID, r.Error)
		}
		got = append(got, string(r.ID))
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("reply ids (-want +got):\n%s", diff)
	}
}

// TestWatchedTransactionsFreeTheirSlots: a connection watches 2,000
// transactions to their final status without ever unwatching, with the
// default cap of 1,024 subscriptions: none is refused.
func TestWatchedTransactionsFreeTheirSlots(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy(), MaxSubscriptions: 1024})
	c := dial(t, url, nil)
	c.SetReadLimit(-1)
	ctx := testCtx(t)
	const total, window = 2000, 200
	for sent := 0; sent < total; sent += window {
		calls := repeat(window, func(i int) string {
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"author_submitAndWatchExtrinsic","params":["0x%04x"]}`, sent+i, sent+i)
		})
		if err := c.Write(ctx, websocket.MessageText, []byte("["+strings.Join(calls, ",")+"]")); err != nil {
			t.Fatal(err)
		}
		if ok, denied := tally(t, replies(ctx, t, c, window)); ok != window {
			t.Fatalf("after %d watched transactions: %d of %d watches accepted, %d refused -32005", sent, ok, window, denied)
		}
	}
}

// TestHTTPBodiesAlwaysInspected: a JSON-RPC body reaches the node only
// through the policy, whatever the HTTP method and its case.
func TestHTTPBodiesAlwaysInspected(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	base := "http" + strings.TrimPrefix(url, "ws")
	unsafe := `{"jsonrpc":"2.0","id":1,"method":"author_insertKey","params":["aura","seed","0x00"]}`
	for _, method := range []string{"PUT", "PATCH", "post", "Post", "GET", "DELETE", "OPTIONS", "PROPFIND"} {
		t.Run(method, func(t *testing.T) {
			req, err := http.NewRequest(method, base, strings.NewReader(unsafe))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r rpcReply
			if resp.StatusCode != http.StatusMethodNotAllowed || json.Unmarshal(b, &r) != nil || r.Error == nil {
				t.Errorf("%s with a JSON-RPC body: %d %s, want 405 with a JSON-RPC error", method, resp.StatusCode, b)
			}
		})
	}
	t.Run("POST", func(t *testing.T) {
		resp, err := http.Post(base, "application/json", strings.NewReader(unsafe))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r rpcReply
		if json.Unmarshal(b, &r); r.Error == nil || r.Error.Code != -32601 {
			t.Errorf("POST of an unsafe call: %d %s, want a -32601 refusal", resp.StatusCode, b)
		}
	})
	if seen := node.Seen(); len(seen) != 0 {
		t.Errorf("the node saw %v; want nothing", seen)
	}
}
