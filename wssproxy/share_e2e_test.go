package wssproxy

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// shareClients is how many @polkadot/api clients the shared-mode e2e tests
// connect: 500, or $WSSGATE_SHARE_CLIENTS.
func shareClients() int {
	if n, err := strconv.Atoi(os.Getenv("WSSGATE_SHARE_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 500
}

// TestShareE2EHeads connects 500 real @polkadot/api clients (10 full
// ApiPromise instances, the rest WsProviders) in shared mode: the node
// sees at most 4 connections and one chain_subscribeNewHeads, every
// client receives every head in order, clients that leave end nothing for
// the others, and the last one ends the node subscription.
func TestShareE2EHeads(t *testing.T) {
	rpctest.RequireE2E(t)
	node := startNode(t)
	opts := e2eOptions(t)
	_, url := startShared(t, nil, opts, node)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	total := shareClients()
	js, err := rpctest.StartHeadClients(ctx, url, total, min(10, total))
	if err != nil {
		t.Fatal(err)
	}
	defer js.Wait(ctx)
	if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Ready > 0 }); err != nil {
		t.Fatal(err)
	}
	if got := node.Conns(); got > 4 {
		t.Errorf("node has %d connections, want at most 4", got)
	}
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("node saw %d chain_subscribeNewHeads for %d clients, want 1", got, total)
	}
	advance := func(k int) {
		t.Helper()
		for range k {
			n := node.Advance()
			if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Head == n }); err != nil {
				t.Fatalf("head %d: %v", n, err)
			}
		}
	}
	advance(5)
	// Clients leave: those that stay get every head; the node keeps its
	// one subscription.
	if err := js.Command("leave " + strconv.Itoa(total/2)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Left > 0 }); err != nil {
		t.Fatal(err)
	}
	advance(5)
	if got := countSeen(node, "chain_unsubscribeNewHeads"); got != 0 {
		t.Errorf("node saw %d chain_unsubscribeNewHeads while clients remain", got)
	}
	js.Command("report")
	ev, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Report != nil })
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Report
	t.Logf("report: %+v; node connections %d", *r, node.Conns())
	if r.Clients != total || r.Connected != total-total/2 || len(r.Problems) > 0 || r.MinHeads != 11 {
		t.Errorf("report %+v: want %d clients, %d connected, 11 heads each (1 + 10), no problems", *r, total, total-total/2)
	}
	// The last ones leave: the node subscription ends, once.
	js.Command("leave " + strconv.Itoa(total))
	if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Left > 0 }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node unsubscribe", func() bool { return countSeen(node, "chain_unsubscribeNewHeads") == 1 })
	if got := countSeen(node, "chain_subscribeNewHeads"); got != 1 {
		t.Errorf("node saw %d chain_subscribeNewHeads, want 1", got)
	}
}

// TestShareE2EChainHead runs a new-API client (polkadot-api's
// substrate-client, e2e/follow.mjs: chainHead_v1_follow, header, body and
// call operations, unpin, unfollow) through shared mode, three at once:
// each follow is its own on the node, over the shared connections.
func TestShareE2EChainHead(t *testing.T) {
	rpctest.RequireE2E(t)
	node := e2eNode(t) // a block every 200 ms
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 2}, e2eOptions(t), node)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const clients = 3
	results := make([]*rpctest.FollowResult, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { results[i], errs[i] = rpctest.RunFollow(ctx, url) })
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if res.Runtime == nil || *res.Runtime == "" || res.HeaderBytes < 90 || res.MetadataVersions != "0x080e0000000f000000" ||
			res.NewBlocks < 2 || res.Finalized < 2 {
			t.Errorf("client %d: %+v", i, res)
		}
	}
	if got := countSeen(node, "chainHead_v1_follow"); got != clients {
		t.Errorf("node saw %d follows, want %d", got, clients)
	}
	if got := node.Conns(); got > 2 {
		t.Errorf("node has %d connections, want at most 2", got)
	}
	waitFor(t, "the unfollows", func() bool { return countSeen(node, "chainHead_v1_unfollow") == clients })
}
