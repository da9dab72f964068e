package rpctest_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// TestStallFinality: while finality is stalled new heads keep coming but
// the finalized head stays; ResumeFinality finalizes the best block and
// announces it. One connection carries both subscriptions, so message
// order shows that no finalized head was sent during the stall.
func TestStallFinality(t *testing.T) {
	t.Parallel()
	n := start(t, nil)
	c := dial(t, n)
	newID := unmarshal[string](t, c.call("chain_subscribeNewHeads"))
	c.readResponse() // #0
	finID := unmarshal[string](t, c.call("chain_subscribeFinalizedHeads"))
	c.readResponse() // #0
	n.Advance()
	seen := map[string]string{} // subscription: head; the two come in either order
	for range 2 {
		got := c.readResponse()
		seen[got.Params.Subscription] = unmarshal[rpctest.Header](t, got.Params.Result).Number
	}
	if seen[newID] != "0x1" || seen[finID] != "0x1" {
		t.Fatalf("before the stall: %v, want new and finalized head 0x1", seen)
	}

	n.StallFinality()
	for range 3 {
		n.Advance()
	}
	if num, _ := n.FinalizedBlock(); num != 1 {
		t.Errorf("FinalizedBlock %d during the stall, want 1", num)
	}
	for _, want := range []string{"0x2", "0x3", "0x4"} {
		got := c.readResponse()
		if h := unmarshal[rpctest.Header](t, got.Params.Result); got.Params.Subscription != newID || h.Number != want {
			t.Fatalf("during the stall: %s %s, want new head %s", got.Params.Subscription, h.Number, want)
		}
	}
	_, hash1 := n.FinalizedBlock()
	if got := unmarshal[string](t, c.call("chain_getFinalizedHead")); got != hash1 {
		t.Errorf("chain_getFinalizedHead %s during the stall, want block 1's %s", got, hash1)
	}

	n.ResumeFinality()
	got := c.readResponse()
	if h := unmarshal[rpctest.Header](t, got.Params.Result); got.Params.Subscription != finID || h.Number != "0x4" {
		t.Fatalf("after ResumeFinality: %s %s, want finalized 0x4", got.Params.Subscription, h.Number)
	}
	best, bestHash := n.BestBlock()
	if num, hash := n.FinalizedBlock(); num != best || hash != bestHash {
		t.Errorf("FinalizedBlock %d after resume, want the best %d", num, best)
	}
}

// TestPauseBlocks: PauseBlocks stops the BlockInterval producer while
// Advance still works; ResumeBlocks restarts it. Notifications arrive in
// order on one connection, so the head that follows an explicit Advance
// during the pause shows what the producer did.
func TestPauseBlocks(t *testing.T) {
	t.Parallel()
	n := start(t, &rpctest.Options{BlockInterval: 2 * time.Millisecond})
	c := dial(t, n)
	unmarshal[string](t, c.call("chain_subscribeNewHeads"))
	n.PauseBlocks()
	want := n.Advance() // after the pause: nothing follows it until the resume
	for {
		h := unmarshal[rpctest.Header](t, c.readResponse().Params.Result)
		if h.Number == hexNum(want) {
			break
		}
	}
	if got := n.Advance(); got != want+1 {
		t.Fatalf("second explicit block during the pause is #%d, want #%d", got, want+1)
	}
	if h := unmarshal[rpctest.Header](t, c.readResponse().Params.Result); h.Number != hexNum(want+1) {
		t.Fatalf("head after two explicit blocks during the pause: %s, want %s", h.Number, hexNum(want+1))
	}
	n.ResumeBlocks()
	if h := unmarshal[rpctest.Header](t, c.readResponse().Params.Result); h.Number != hexNum(want+2) {
		t.Fatalf("first produced head after the resume: %s, want %s", h.Number, hexNum(want+2))
	}
}

// TestSafeRPCMethods: with SafeRPCMethods the node refuses every unsafe
// method with Substrate's UnsafeRpcError; switched off it answers them.
func TestSafeRPCMethods(t *testing.T) {
	t.Parallel()
	n := start(t, &rpctest.Options{SafeRPCMethods: true})
	c := dial(t, n)
	for _, m := range rpctest.UnsafeMethods() {
		r := c.callResponse(m)
		if r.Error == nil || r.Error.Code != rpctest.CodeMethodNotFound || r.Error.Message != "RPC call is unsafe to be called externally" || r.Error.Data != nil {
			t.Errorf("%s on a safe node: %+v %s, want -32601 unsafe", m, r.Error, r.Result)
		}
	}
	if got := string(c.call("system_chain")); got != `"Development"` {
		t.Errorf("system_chain on a safe node: %s", got)
	}
	n.SetSafeRPCMethods(false)
	if got := string(c.call("system_peers")); got != "[]" {
		t.Errorf("system_peers on an unsafe node: %s, want []", got)
	}
}

func hexNum(n uint64) string { return "0x" + strconv.FormatUint(n, 16) }
