package wssproxy

import (
	"context"
	"fmt"
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
