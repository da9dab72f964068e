package wssproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestShareCache(t *testing.T) {
	node := startNode(t)
	var hits, misses atomic.Int64
	m := &Metrics{Cache: func(_ string, hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}}
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 1}, &Options{Policy: DefaultPolicy(), Metrics: m}, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, best := node.BestBlock()
	call := func(method, params string) wsMessage {
		t.Helper()
		c := dialWS(t, ctx, url)
		send(t, ctx, c, `{"jsonrpc":"2.0","id":"c","method":"`+method+`","params":`+params+`}`)
		r := readMessage(t, ctx, c)
		if r.Error != nil || string(r.ID) != `"c"` {
			t.Fatalf("%s: %+v", method, r)
		}
		c.Close(1000, "")
		return r
	}
	cases := []struct {
		method, params string
		nodeCalls      int // the node's count after 5 calls, from other clients
	}{
		{"system_chain", `[]`, 1},
		{"system_properties", `[]`, 1},
		{"chain_getBlockHash", `[0]`, 2}, // and the gateway's own, for the genesis
		{"chain_getHeader", `["` + best + `"]`, 1},
		{"chain_getBlock", `["` + best + `"]`, 1},
		{"state_getRuntimeVersion", `[]`, 5}, // the best block's: never cached
		{"chain_getHeader", `[]`, 5 + 1},
	}
	for _, tc := range cases {
		var want string
		for i := range 5 {
			r := call(tc.method, tc.params)
			if i == 0 {
				want = string(r.Result)
			} else if string(r.Result) != want {
				t.Errorf("%s(%s) call %d: %s, want %s", tc.method, tc.params, i, r.Result, want)
			}
		}
		if got := countSeen(node, tc.method); got != tc.nodeCalls {
			t.Errorf("%s(%s): node saw %d calls, want %d", tc.method, tc.params, got, tc.nodeCalls)
		}
	}
	// Metadata at the best block is keyed by the runtime version the node
	// reported (state_getRuntimeVersion above): a new best block hits.
	before := countSeen(node, "state_call")
	for range 3 {
		call("state_call", `["Metadata_metadata_versions","0x"]`)
		node.Advance()
	}
	if got := countSeen(node, "state_call") - before; got != 1 {
		t.Errorf("metadata versions across new blocks: node saw %d calls, want 1", got)
	}
	if hits.Load() == 0 || misses.Load() == 0 {
		t.Errorf("metrics: %d hits, %d misses", hits.Load(), misses.Load())
	}
}

func TestShareCacheCollapsesInFlight(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, best := node.BestBlock()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			c := dialWS(t, ctx, url)
			send(t, ctx, c, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"chain_getBlock","params":["%s"]}`, i, best))
			if r := readMessage(t, ctx, c); r.Error != nil || string(r.ID) != fmt.Sprint(i) || !strings.Contains(string(r.Result), "block") {
				t.Errorf("client %d: %+v", i, r)
			}
		})
	}
	wg.Wait()
	if got := countSeen(node, "chain_getBlock"); got != 1 {
		t.Errorf("node saw %d chain_getBlock for 50 identical calls, want 1", got)
	}
}

func TestShareCacheLRU(t *testing.T) {
	sc := newShareCache(4096, hooks{})
	big := []byte(strings.Repeat("x", 900))
	for i := range 8 {
		sc.put(fmt.Sprint(i), big)
		sc.get("0") // keep the first one recent
	}
	if sc.size > 4096 {
		t.Errorf("size %d over the bound", sc.size)
	}
	if _, ok := sc.get("0"); !ok {
		t.Error("the most recently used entry was evicted")
	}
	if _, ok := sc.get("1"); ok {
		t.Error("the least recently used entry was kept")
	}
	sc.put("huge", make([]byte, 2048))
	if _, ok := sc.get("huge"); ok {
		t.Error("an entry of over a quarter of the bound was cached")
	}
}

// TestCacheKeyRules: what may be cached, and that nothing depending on
// the best block is.
func TestCacheKeyRules(t *testing.T) {
	h := &shareHub{genesis: "0xgen", runtime: "node/100/1", shared: map[string]*sharedSub{}}
	hash := `"0x` + strings.Repeat("ab", 32) + `"`
	cases := []struct {
		method, params string
		cached         bool
	}{
		{"system_chain", `[]`, true},
		{"system_properties", ``, true},
		{"system_health", `[]`, false},
		{"chain_getBlockHash", `[0]`, true},
		{"chain_getBlockHash", `["0x0"]`, true},
		{"chain_getBlockHash", `[5]`, false}, // not known to be finalized
		{"chain_getBlockHash", `[]`, false},  // the best block's
		{"chain_getHeader", `[` + hash + `]`, true},
		{"chain_getHeader", `[]`, false},
		{"chain_getHeader", `[null]`, false},
		{"chain_getBlock", `[` + hash + `]`, true},
		{"chain_getBlock", `["0x12"]`, false}, // not a hash
		{"state_getStorage", `["0x26aa",` + hash + `]`, true},
		{"state_getStorage", `["0x26aa"]`, false},
		{"state_call", `["Core_version","0x",` + hash + `]`, true},
		{"state_call", `["AccountNonceApi_account_nonce","0x00"]`, false},
		{"state_call", `["Metadata_metadata_at_version","0x0f000000"]`, true}, // by runtime version
		{"state_getMetadata", `[]`, true},
		{"state_getRuntimeVersion", `[]`, false},
		{"state_getRuntimeVersion", `[` + hash + `]`, true},
		{"author_submitExtrinsic", `["0x00"]`, false},
	}
	for _, tc := range cases {
		if got := h.cacheKeyLocked(tc.method, []byte(tc.params)) != ""; got != tc.cached {
			t.Errorf("%s(%s): cached %v, want %v", tc.method, tc.params, got, tc.cached)
		}
	}
	// Finalized numbers are cached once a shared finalized-heads
	// subscription says they are final.
	h.shared["chain_subscribeFinalizedHeads"] = &sharedSub{live: true, latest: []byte(`{"number":"0x9"}`)}
	if h.cacheKeyLocked("chain_getBlockHash", []byte(`[5]`)) == "" || h.cacheKeyLocked("chain_getBlockHash", []byte(`[10]`)) != "" {
		t.Error("chain_getBlockHash: want block 5 cached and block 10 not, with block 9 finalized")
	}
	// Metadata keys change with the runtime; without a known runtime, no key.
	k1 := h.cacheKeyLocked("state_getMetadata", nil)
	h.runtime = "node/101/1"
	if k2 := h.cacheKeyLocked("state_getMetadata", nil); k1 == k2 {
		t.Error("metadata key does not change with the runtime version")
	}
	h.runtime = ""
	if h.cacheKeyLocked("state_getMetadata", nil) != "" {
		t.Error("metadata cached with no runtime version known")
	}
	// Keys are per chain.
	a := h.cacheKeyLocked("system_chain", nil)
	h.genesis = "0xother"
	if b := h.cacheKeyLocked("system_chain", nil); a == b {
		t.Error("cache key does not name the genesis")
	}
}

func TestShareKeyNormalised(t *testing.T) {
	storage := subscribeOf("state_subscribeStorage")
	k1, _, p1, ok1 := shareKey(storage, "state_subscribeStorage", []byte(`[["0xAB","0xcd","0xab"]]`))
	k2, _, _, ok2 := shareKey(storage, "state_subscribeStorage", []byte(`{"keys": [ "0xcd", "0xAb" ]}`))
	if !ok1 || !ok2 || k1 != k2 || string(p1) != `[["0xab","0xcd"]]` {
		t.Errorf("keys: %q %q, params %s", k1, k2, p1)
	}
	heads := subscribeOf("chain_subscribeNewHead")
	if k, m, _, ok := shareKey(heads, "subscribe_newHead", nil); !ok || m != "chain_subscribeNewHeads" || k != m {
		t.Errorf("alias: key %q method %q", k, m)
	}
	if _, _, _, ok := shareKey(subscribeOf("author_submitAndWatchExtrinsic"), "author_submitAndWatchExtrinsic", []byte(`["0x00"]`)); ok {
		t.Error("a watched extrinsic is shared")
	}
}

// TestShareHTTPPost: JSON-RPC POSTs in shared mode go over the hub, with
// the cache and the policy.
func TestShareHTTPPost(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	post := func(body string) string {
		t.Helper()
		resp, err := http.Post(httpURL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
		}
		return string(b)
	}
	for range 3 {
		if got := post(`{"jsonrpc":"2.0","id":"h","method":"system_chain","params":[]}`); got != `{"jsonrpc":"2.0","id":"h","result":"Development"}` {
			t.Errorf("system_chain: %s", got)
		}
	}
	if got := countSeen(node, "system_chain"); got != 1 {
		t.Errorf("node saw %d system_chain for 3 POSTs, want 1 (cached)", got)
	}
	got := post(`[{"jsonrpc":"2.0","id":1,"method":"author_rotateKeys"},{"jsonrpc":"2.0","id":2,"method":"system_name"}]`)
	if !strings.Contains(got, `"id":1`) || !strings.Contains(got, "-32601") || !strings.Contains(got, `"wssgate rpctest"`) {
		t.Errorf("batch: %s", got)
	}
	// A subscription over HTTP is the node's to refuse, as in splice mode.
	post(`{"jsonrpc":"2.0","id":3,"method":"chain_subscribeNewHeads","params":[]}`)
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("node saw %d chain_subscribeNewHeads over HTTP, want 1", got)
	}
}
