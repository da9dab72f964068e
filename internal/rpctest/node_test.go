package rpctest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/internal/rpctest"
)

func TestMethods(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	n.SetBestBlock(3)
	_, best := n.BestBlock()
	c := dial(t, n)
	genesis := string(unmarshal[string](t, c.call("chain_getBlockHash", 0)))

	tests := []struct {
		method string
		params []any
		want   string
	}{
		{"system_chain", nil, `"Development"`},
		{"system_chainType", nil, `"Development"`},
		{"system_health", nil, `{"peers":0,"isSyncing":false,"shouldHavePeers":false}`},
		{"system_properties", nil, `{"ss58Format":42,"tokenDecimals":12,"tokenSymbol":"UNIT"}`},
		{"chain_getBlockHash", nil, `"` + best + `"`},
		{"chain_getBlockHash", []any{"0x3"}, `"` + best + `"`},
		{"chain_getBlockHash", []any{[]any{0, 3, 4}}, `["` + genesis + `","` + best + `",null]`},
		{"chain_getFinalizedHead", nil, `"` + best + `"`},
		{"chain_getHeader", []any{"0x" + strings.Repeat("00", 32)}, `null`},
		{"state_getStorage", []any{"0x26aa394eea5630e07c48ae0c9558cef7"}, `null`},
		{"state_call", []any{"Metadata_metadata_versions", "0x"}, `"0x080e0000000f000000"`},
		{"state_call", []any{"Metadata_metadata_at_version", "0x0e000000"}, `"0x00"`},
		{"test_echo", []any{"a", 1, map[string]any{"b": nil}}, `["a",1,{"b":null}]`},
		{"test_big", []any{5}, `"xxxxx"`},
		{"author_insertKey", []any{"babe", "//Alice", "0x00"}, `null`},
		{"system_peers", nil, `[]`},
	}
	for _, tt := range tests {
		got := c.call(tt.method, tt.params...)
		if diff := cmp.Diff(tt.want, string(got)); diff != "" {
			t.Errorf("%s%v (-want +got):\n%s", tt.method, tt.params, diff)
		}
	}

	t.Run("header", func(t *testing.T) {
		h := unmarshal[rpctest.Header](t, c.call("chain_getHeader"))
		if h.Number != "0x3" || h.Digest.Logs == nil {
			t.Errorf("header = %+v", h)
		}
		parent := unmarshal[rpctest.Header](t, c.call("chain_getHeader", h.ParentHash))
		if parent.Number != "0x2" {
			t.Errorf("parent number = %s, want 0x2", parent.Number)
		}
		block := unmarshal[struct {
			Block struct {
				Header     rpctest.Header
				Extrinsics []string
			}
		}](t, c.call("chain_getBlock", best))
		if diff := cmp.Diff(h, block.Block.Header); diff != "" {
			t.Errorf("chain_getBlock header (-want +got):\n%s", diff)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		meta := unmarshal[string](t, c.call("state_getMetadata"))
		if !strings.HasPrefix(meta, "0x6d6574610f") || len(meta) < 1<<20 {
			t.Errorf("state_getMetadata = %.20s... (%d chars), want v15 metadata", meta, len(meta))
		}
		at := unmarshal[string](t, c.call("state_call", "Metadata_metadata_at_version", "0x0f000000"))
		if !strings.HasSuffix(at, meta[2:]) || !strings.HasPrefix(at, "0x01") {
			t.Errorf("Metadata_metadata_at_version(15) is not Some(metadata)")
		}
		rv := unmarshal[struct {
			SpecName    string
			SpecVersion int
		}](t, c.call("state_getRuntimeVersion"))
		if rv.SpecName != "node" || rv.SpecVersion != 268 {
			t.Errorf("runtime version = %+v", rv)
		}
	})
	t.Run("rpc_methods", func(t *testing.T) {
		got := unmarshal[struct{ Methods []string }](t, c.call("rpc_methods")).Methods
		for _, m := range append(rpctest.UnsafeMethods(), "chain_subscribeNewHeads", "state_getMetadata", "test_big") {
			if !slices.Contains(got, m) {
				t.Errorf("rpc_methods lacks %s", m)
			}
		}
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	n := start(t, &rpctest.Options{MaxMessageSize: 1000})
	c := dial(t, n)
	tests := []struct {
		name, req, want string
	}{
		{"unknown method", `{"jsonrpc":"2.0","id":7,"method":"nope_nope"}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}`},
		{"parse error", `{"jsonrpc":"2.0",`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`},
		{"invalid request", `{"jsonrpc":"1.0","id":"x","method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":"x","error":{"code":-32600,"message":"Invalid request"}}`},
		{"string id decoded and encoded again, as jsonrpsee does", `{"jsonrpc":"2.0","id":"<a&b>\u00e9\u0061","method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":"<a&b>éa","result":"Development"}`},
		{"u64 id", `{"jsonrpc":"2.0","id":18446744073709551615,"method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":18446744073709551615,"result":"Development"}`},
		// Ids that are not null, a u64 or a string make the call a
		// notification: no answer, so the next call's answer comes first.
		{"fractional id not answered", `{"jsonrpc":"2.0","id":1.50,"method":"system_chain"}` + "\n" + `{"jsonrpc":"2.0","id":8,"method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":8,"result":"Development"}`},
		{"negative id not answered", `{"jsonrpc":"2.0","id":-1,"method":"system_chain"}` + "\n" + `{"jsonrpc":"2.0","id":9,"method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":9,"result":"Development"}`},
		{"id over 2^64-1 not answered", `{"jsonrpc":"2.0","id":18446744073709551616,"method":"system_chain"}` + "\n" + `{"jsonrpc":"2.0","id":10,"method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":10,"result":"Development"}`},
		{"bool id not answered", `{"jsonrpc":"2.0","id":true,"method":"system_chain"}` + "\n" + `{"jsonrpc":"2.0","id":11,"method":"system_chain"}`,
			`{"jsonrpc":"2.0","id":11,"result":"Development"}`},
		{"invalid params", `{"jsonrpc":"2.0","id":1,"method":"test_big","params":["x"]}`,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params","data":"param 0: json: cannot unmarshal string into Go value of type int64"}}`},
		{"response too big", `{"jsonrpc":"2.0","id":1,"method":"test_big","params":[2000]}`,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32008,"message":"Response is too big","data":"Exceeded max limit of 1000"}}`},
		{"empty batch", `[]`,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}`},
	}
	for _, tt := range tests {
		for _, req := range strings.Split(tt.req, "\n") {
			c.send(req)
		}
		if diff := cmp.Diff(tt.want, string(c.read())); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	c.send(`[{"jsonrpc":"2.0","id":1,"method":"system_name"},` +
		`{"jsonrpc":"2.0","method":"system_chain"},` +
		`{"jsonrpc":"2.0","id":"two","method":"test_echo","params":[2]},` +
		`{"jsonrpc":"2.0","id":3,"method":"author_rotateKeys_typo"}]`)
	want := `[{"jsonrpc":"2.0","id":1,"result":"wssgate rpctest"},` +
		`{"jsonrpc":"2.0","id":"two","result":[2]},` +
		`{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found"}}]`
	if diff := cmp.Diff(want, string(c.read())); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
	wantSeen := []string{"system_name", "system_chain", "test_echo", "author_rotateKeys_typo"}
	if diff := cmp.Diff(wantSeen, n.Seen()); diff != "" {
		t.Errorf("Seen (-want +got):\n%s", diff)
	}
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		subscribe, unsubscribe, notification string
	}{
		{"chain_subscribeNewHeads", "chain_unsubscribeNewHeads", "chain_newHead"},
		{"chain_subscribeFinalizedHeads", "chain_unsubscribeFinalizedHeads", "chain_finalizedHead"},
		{"chain_subscribeAllHeads", "chain_unsubscribeAllHeads", "chain_allHead"},
	} {
		t.Run(tt.subscribe, func(t *testing.T) {
			t.Parallel()
			n := start(t, nil)
			c := dial(t, n)
			id := unmarshal[string](t, c.call(tt.subscribe))
			first := c.readResponse()
			if first.Method != tt.notification || first.Params.Subscription != id {
				t.Fatalf("first notification = %+v", first)
			}
			if h := unmarshal[rpctest.Header](t, first.Params.Result); h.Number != "0x0" {
				t.Errorf("first head = %s, want the current best 0x0", h.Number)
			}
			for want := range []string{"0x1", "0x2"} {
				n.Advance()
				got := c.readResponse()
				h := unmarshal[rpctest.Header](t, got.Params.Result)
				if got.Method != tt.notification || h.Number != []string{"0x1", "0x2"}[want] {
					t.Errorf("notification %d = %s %s", want, got.Method, h.Number)
				}
			}
			if got := string(c.call(tt.unsubscribe, id)); got != "true" {
				t.Errorf("%s = %s, want true", tt.unsubscribe, got)
			}
			if got := string(c.call(tt.unsubscribe, id)); got != "false" {
				t.Errorf("second %s = %s, want false", tt.unsubscribe, got)
			}
		})
	}
	t.Run("runtime version and storage", func(t *testing.T) {
		t.Parallel()
		n := start(t, nil)
		c := dial(t, n)
		id := unmarshal[string](t, c.call("state_subscribeRuntimeVersion"))
		note := c.readResponse()
		if note.Method != "state_runtimeVersion" || note.Params.Subscription != id || !strings.Contains(string(note.Params.Result), `"specVersion":268`) {
			t.Errorf("runtime version notification = %s %s %.80s", note.Method, note.Params.Subscription, note.Params.Result)
		}
		c.call("state_subscribeStorage", []string{"0x01"})
		note = c.readResponse()
		_, best := n.BestBlock()
		want := `{"block":"` + best + `","changes":[["0x01",null]]}`
		if diff := cmp.Diff(want, string(note.Params.Result)); note.Method != "state_storage" || diff != "" {
			t.Errorf("storage notification %s (-want +got):\n%s", note.Method, diff)
		}
	})
	t.Run("limit", func(t *testing.T) {
		t.Parallel()
		n := start(t, nil)
		c := dial(t, n)
		var batch []string
		for range 1025 {
			batch = append(batch, `{"jsonrpc":"2.0","id":1,"method":"chain_subscribeNewHeads"}`)
		}
		c.send("[" + strings.Join(batch, ",") + "]")
		replies := unmarshal[[]response](t, c.read())
		var errs []*rpctest.Error
		for _, r := range replies {
			if r.Error != nil {
				errs = append(errs, r.Error)
			}
		}
		want := []*rpctest.Error{{Code: -32006, Message: "Too many subscriptions on the connection", Data: "Exceeded max limit of 1024"}}
		if diff := cmp.Diff(want, errs); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("block interval", func(t *testing.T) {
		t.Parallel()
		n := start(t, &rpctest.Options{BlockInterval: 10 * time.Millisecond})
		c := dial(t, n)
		c.call("chain_subscribeNewHeads")
		var last uint64
		for range 3 {
			h := unmarshal[rpctest.Header](t, c.readResponse().Params.Result)
			num, err := strconv.ParseUint(strings.TrimPrefix(h.Number, "0x"), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if num < last {
				t.Errorf("heads went back from %d to %d", last, num)
			}
			last = num
		}
	})
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	post := func(body, contentType string) (int, string) {
		t.Helper()
		resp, err := http.Post(n.HTTPURL(), contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(n.HTTPURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	type result struct {
		Code int
		Body string
	}
	check := func(name string, want result, code int, body string) {
		t.Helper()
		if diff := cmp.Diff(want, result{code, body}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	code, body := post(`{"jsonrpc":"2.0","id":1,"method":"system_chain"}`, "application/json")
	check("POST", result{200, `{"jsonrpc":"2.0","id":1,"result":"Development"}`}, code, body)
	code, body = post(`[{"jsonrpc":"2.0","id":1,"method":"test_echo","params":[1]},{"jsonrpc":"2.0","id":2,"method":"x"}]`, "application/json; charset=utf-8")
	check("POST batch", result{200, `[{"jsonrpc":"2.0","id":1,"result":[1]},{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"Method not found"}}]`}, code, body)
	code, _ = post(`{}`, "text/plain")
	check("POST text/plain", result{415, ""}, code, "")
	code, body = get("/health")
	check("GET /health", result{200, `{"peers":0,"isSyncing":false,"shouldHavePeers":false}`}, code, body)
	code, _ = get("/health/readiness")
	check("GET /health/readiness", result{200, ""}, code, "")
	n.SetHealth(rpctest.Health{Peers: 3, IsSyncing: true, ShouldHavePeers: true})
	code, body = get("/health")
	check("GET /health syncing", result{200, `{"peers":3,"isSyncing":true,"shouldHavePeers":true}`}, code, body)
	code, _ = get("/health/readiness")
	check("GET /health/readiness syncing", result{500, ""}, code, "")
	code, _ = get("/")
	check("GET /", result{405, ""}, code, "")

	want := []string{"system_chain", "test_echo", "x"}
	if diff := cmp.Diff(want, n.Seen()); diff != "" {
		t.Errorf("Seen (-want +got):\n%s", diff)
	}
}

func TestWaitSeen(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	done := make(chan error, 1)
	go func() { done <- n.WaitSeen(testContext(t), 3) }()
	c.send(`{"jsonrpc":"2.0","method":"a"}`)
	c.send(`{"jsonrpc":"2.0","method":"b"}`)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"c"}`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, n.Seen()); diff != "" {
		t.Errorf("Seen (-want +got):\n%s", diff)
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.WaitSeen(canceled, 4); err == nil {
		t.Error("WaitSeen(canceled ctx, 4) = nil, want an error")
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	ctx := testContext(t)
	h := http.Header{"Origin": {"https://app.example"}, "X-Forwarded-For": {"203.0.113.7"}}
	ws, _, err := websocket.Dial(ctx, n.URL(), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	got := n.Headers()
	if len(got) != 1 {
		t.Fatalf("Headers() has %d entries, want 1", len(got))
	}
	for k, want := range map[string]string{"Host": n.Addr(), "Origin": "https://app.example", "X-Forwarded-For": "203.0.113.7", "Upgrade": "websocket"} {
		if v := got[0].Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	// The node registers a connection after writing its 101 response, so
	// the client can get there first: wait, bounded.
	for deadline := time.Now().Add(10 * time.Second); n.Conns() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Conns() = %d, want 1", n.Conns())
		}
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	c.call("system_chain")
	n.Kill()
	_, _, err := c.ws.Read(c.ctx)
	if err == nil {
		t.Fatal("Read after Kill succeeded")
	}
	if code := websocket.CloseStatus(err); code != -1 {
		t.Errorf("Read after Kill got close frame %v, want none (%v)", code, err)
	}
	if _, _, err := websocket.Dial(c.ctx, n.URL(), nil); err == nil {
		t.Error("Dial after Kill succeeded")
	}
	if err := n.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close after Kill = %v, want net.ErrClosed", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	c.call("system_chain")
	go func() {
		// The client answers the close frame from its Read loop.
		for {
			if _, _, err := c.ws.Read(c.ctx); err != nil {
				return
			}
		}
	}()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n.Conns() != 0 {
		t.Errorf("Conns() after Close = %d", n.Conns())
	}
	if err := n.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
}

func TestCloseStatus(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ws.Read(c.ctx)
		errc <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	if code := websocket.CloseStatus(<-errc); code != websocket.StatusGoingAway {
		t.Errorf("close status = %v, want %v", code, websocket.StatusGoingAway)
	}
	if err := <-closed; err != nil {
		t.Error(err)
	}
}

func TestStall(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	c.call("system_chain")
	n.Stall()

	c.send(`{"jsonrpc":"2.0","id":2,"method":"system_health"}`)
	if err := n.WaitSeen(c.ctx, 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 200*time.Millisecond)
	defer cancel()
	if _, msg, err := c.ws.Read(ctx); err == nil {
		t.Errorf("stalled node answered %s", msg)
	}
	ctx, cancel = context.WithTimeout(c.ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, n.URL(), nil); err == nil {
		t.Error("handshake with a stalled node succeeded")
	}

	n.Resume()
	c2 := dial(t, n)
	if got := string(c2.call("system_chain")); got != `"Development"` {
		t.Errorf("after Resume system_chain = %s", got)
	}
}

func TestSetBestBlock(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	n.SetBestBlock(100)
	if got := unmarshal[*string](t, c.call("chain_getBlockHash", 57)); got == nil {
		t.Error("block 57 unknown after SetBestBlock(100)")
	}
	n.SetBestBlock(1_000_000)
	num, hash := n.BestBlock()
	if num != 1_000_000 {
		t.Errorf("BestBlock = %d", num)
	}
	if got := unmarshal[string](t, c.call("chain_getBlockHash", 1_000_000)); got != hash {
		t.Errorf("hash of best = %s, want %s", got, hash)
	}
	if got := string(c.call("chain_getBlockHash", 500_000)); got != "null" {
		t.Errorf("hash of skipped block = %s, want null", got)
	}
	n.SetBestBlock(10)
	if num, _ := n.BestBlock(); num != 10 {
		t.Errorf("BestBlock after going back = %d", num)
	}
}

func TestWatchedExtrinsicEndsItself(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"author_submitAndWatchExtrinsic","params":["0x00"]}`)
	var reply struct {
		Result string `json:"result"`
	}
	if err := json.Unmarshal(c.read(), &reply); err != nil || reply.Result == "" {
		t.Fatalf("submitAndWatch reply: %v %+v", err, reply)
	}
	var statuses []string
	for range 3 {
		var note struct {
			Method string
			Params struct {
				Subscription string
				Result       json.RawMessage
			}
		}
		if err := json.Unmarshal(c.read(), &note); err != nil {
			t.Fatal(err)
		}
		if note.Method != "author_extrinsicUpdate" || note.Params.Subscription != reply.Result {
			t.Fatalf("notification %+v, want author_extrinsicUpdate of %s", note, reply.Result)
		}
		s := string(note.Params.Result)
		if i := strings.IndexByte(s, ':'); i > 0 {
			s = s[:i]
		}
		statuses = append(statuses, s)
	}
	if diff := cmp.Diff([]string{`"ready"`, `{"inBlock"`, `{"finalized"`}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	// The node ended it at "finalized": an unwatch finds nothing.
	c.send(`{"jsonrpc":"2.0","id":2,"method":"author_unwatchExtrinsic","params":["` + reply.Result + `"]}`)
	if got, want := string(c.read()), `{"jsonrpc":"2.0","id":2,"result":false}`; got != want {
		t.Errorf("unwatch after finalized = %s, want %s", got, want)
	}
}
