package wssproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// BenchmarkShareFanout measures new heads delivered to N subscribers
// (@polkadot/api WsProviders in a Node process of their own, e2e/share.mjs)
// straight from the node ("direct"), through the gateway in splice mode
// and in shared mode. The gateway and the node run in this process, so
// cpu-us/notif (user+system CPU of this process per delivered
// notification) and heap-B/client (live heap per subscribed client) cover
// both; the node's own share is the "direct" line. One op is one block.
//
//	WSSGATE_E2E=1 go test -run '^$' -bench ShareFanout -benchtime 20x ./wssproxy/
func BenchmarkShareFanout(b *testing.B) {
	rpctest.RequireE2E(b)
	for _, n := range []int{100, 1000, 5000} {
		for _, mode := range []string{"direct", "splice", "shared"} {
			b.Run(fmt.Sprintf("N=%d/%s", n, mode), func(b *testing.B) { benchFanout(b, n, mode) })
		}
	}
}

func benchFanout(b *testing.B, n int, mode string) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	before := takeFootprint()
	node, err := rpctest.Start(&rpctest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	url := node.URL()
	if mode != "direct" {
		opts := &Options{Logger: slog.New(slog.DiscardHandler), HealthInterval: -1, Policy: DefaultPolicy(), MaxSubscriptions: 1024}
		if mode == "shared" {
			opts.Share = &ShareOptions{}
		}
		url = benchProxy(b, node.URL(), opts)
	}
	js, err := rpctest.StartHeadClients(ctx, url, n, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer js.Wait(ctx)
	if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Ready > 0 }); err != nil {
		b.Fatal(err)
	}
	after := takeFootprint()
	nodeConns, nodeSubs := node.Conns(), countSeen(node, "chain_subscribeNewHeads")
	cpu0 := cpuTime()
	blocks := 0
	for b.Loop() {
		h := node.Advance()
		if _, err := js.Next(ctx, func(e rpctest.HeadEvent) bool { return e.Head == h }); err != nil {
			b.Fatal(err)
		}
		blocks++
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(nodeConns), "node-conns")
	b.ReportMetric(float64(nodeSubs), "node-notifs/block")
	b.ReportMetric(float64(cpu.Microseconds())/float64(blocks*n), "cpu-us/notif")
	b.ReportMetric(float64(int64(after.heap)-int64(before.heap))/float64(n), "heap-B/client")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/client")
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkShareApiStarts starts ApiPromise STARTS times (default 1,000,
// 20 at a time) through the gateway, in splice mode and in shared mode,
// and reports the calls that reached the node per start and, in shared
// mode, the response cache's hit rate.
//
//	WSSGATE_E2E=1 go test -run '^$' -bench ShareApiStarts -benchtime 1x ./wssproxy/
func BenchmarkShareApiStarts(b *testing.B) {
	rpctest.RequireE2E(b)
	starts := 1000
	if s, err := strconv.Atoi(os.Getenv("STARTS")); err == nil && s > 0 {
		starts = s
	}
	for _, mode := range []string{"splice", "shared"} {
		b.Run(mode, func(b *testing.B) { benchStarts(b, mode, starts) })
	}
}

func benchStarts(b *testing.B, mode string, starts int) {
	node, err := rpctest.Start(&rpctest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	var hits, misses atomic.Int64
	m := &Metrics{Cache: func(_ string, hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}}
	opts := &Options{Logger: slog.New(slog.DiscardHandler), HealthInterval: -1, Policy: DefaultPolicy(), Metrics: m}
	if mode == "shared" {
		opts.Share = &ShareOptions{}
	}
	url := benchProxy(b, node.URL(), opts)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Minute)
	defer cancel()
	for b.Loop() {
		hits.Store(0)
		misses.Store(0)
		seen0 := len(node.Seen())
		res, err := rpctest.RunStarts(ctx, url, "STARTS="+strconv.Itoa(starts), "CONCURRENCY=20")
		if err != nil {
			b.Fatal(err)
		}
		if h, ms := hits.Load(), misses.Load(); h+ms > 0 {
			b.ReportMetric(100*float64(h)/float64(h+ms), "cache-hit-%")
		}
		seen := node.Seen()[seen0:]
		b.ReportMetric(float64(len(seen))/float64(res.Starts), "node-calls/start")
		byMethod := map[string]int{}
		for _, m := range seen {
			byMethod[m]++
		}
		b.Logf("%s: node calls by method for %d starts: %v", mode, res.Starts, byMethod)
		b.ReportMetric(float64(res.ElapsedMs)/float64(res.Starts), "ms/start")
	}
}

// benchProxy serves a proxy for upstream until b ends, and returns its
// ws:// URL.
func benchProxy(b *testing.B, upstream string, opts *Options) string {
	p, err := New(upstream, opts)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(p)
	b.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}
