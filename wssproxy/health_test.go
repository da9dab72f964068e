package wssproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// testClock is the health checks' clock in tests: it moves only when the
// test advances it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logCapture is a slog handler that keeps every record, and passes it on
// to the test log.
type logCapture struct {
	next slog.Handler
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogCapture(t *testing.T) (*slog.Logger, *logCapture) {
	h := &logCapture{next: testLogger(t).Handler(), mu: new(sync.Mutex), recs: new([]slog.Record)}
	return slog.New(h), h
}

func (h *logCapture) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler          { panic("not used") }
func (h *logCapture) WithGroup(string) slog.Handler                  { panic("not used") }

func (h *logCapture) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Clone())
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// count returns how many records have msg and, for each key=value pair of
// attrs, that attribute.
func (h *logCapture) count(msg string, attrs ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.recs {
		if r.Message != msg {
			continue
		}
		got := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			got[a.Key] = a.Value.String()
			return true
		})
		match := true
		for i := 0; i < len(attrs); i += 2 {
			if got[attrs[i]] != attrs[i+1] {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// startHealthPool serves a pool whose health checks run once at start and
// then only when the test calls checkAll, on clock.
func startHealthPool(t *testing.T, upstreams []string, clock *testClock, opts *Options) (*Proxy, string, *logCapture) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	logger, logs := newLogCapture(t)
	opts.Logger = logger
	opts.HealthInterval = time.Hour
	opts.now = clock.Now
	p, url := startPool(t, upstreams, opts)
	return p, url, logs
}

// waitHeads waits until the gateway has seen best block n on node i.
func waitHeads(t *testing.T, p *Proxy, i int, best, finalized uint64) {
	t.Helper()
	waitFor(t, "the gateway to see the node's heads", func() bool {
		s := p.Nodes()[i]
		return s.BestBlock == best && s.FinalizedBlock == finalized
	})
}

// noWebSocketNode fronts node with a server that forwards HTTP POSTs and
// refuses WebSocket upgrades, so that the gateway must poll its heads.
func noWebSocketNode(t *testing.T, node *rpctest.Node) string {
	t.Helper()
	target, err := url.Parse(node.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			http.Error(w, "no WebSocket here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// wantState fails t unless node i is in state with a reason containing
// reason.
func wantState(t *testing.T, p *Proxy, i int, state, reason string) NodeStatus {
	t.Helper()
	s := p.Nodes()[i]
	if s.State != state || s.Healthy != (state == StateHealthy) || !strings.Contains(s.Reason, reason) {
		t.Fatalf("node %d: %+v, want state %s with reason %q", i, s, state, reason)
	}
	return s
}

// TestHealthStalledAlone: a node that stops producing heads, alone in its
// pool, turns unhealthy once its best block has stood still for longer
// than the stall timeout (60 s here, the minimum) and healthy when heads
// resume; each change is logged once. With heads from the subscriptions,
// and polled from a node that refuses WebSockets.
func TestHealthStalledAlone(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"subscription", "polling"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			node, err := rpctest.Start(&rpctest.Options{BlockInterval: 5 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { node.Close() })
			upstream := node.URL()
			if mode == "polling" {
				upstream = noWebSocketNode(t, node)
			}
			clock := newTestClock()
			p, _, logs := startHealthPool(t, []string{upstream}, clock, nil)
			if mode == "subscription" {
				waitFor(t, "head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
			}

			node.PauseBlocks()
			best, _ := node.BestBlock()
			if mode == "polling" {
				p.checkAll()
			}
			waitHeads(t, p, 0, best, best)
			clock.Advance(DefaultMinStallTimeout)
			p.checkAll()
			wantState(t, p, 0, StateHealthy, "")

			clock.Advance(time.Second)
			for range 3 { // still stalled: logged once
				p.checkAll()
			}
			st := wantState(t, p, 0, StateStalled, "stalled at #"+itoa(int(best))+" for 1m1s")
			if st.SecondsSinceHead != 61 || st.Heads != mode {
				t.Errorf("stalled node %+v, want 61 s since its head, heads by %s", st, mode)
			}
			if p.Ready() {
				t.Error("Ready with the only node stalled")
			}

			node.ResumeBlocks()
			waitFor(t, "heads to resume", func() bool {
				if mode == "polling" {
					p.checkAll()
				}
				return p.Nodes()[0].BestBlock > best
			})
			p.checkAll()
			wantState(t, p, 0, StateHealthy, "")

			host := p.backends[0].host
			if n := logs.count("wssproxy: node unhealthy", "upstream", host, "state", StateStalled); n != 1 {
				t.Errorf("stall logged %d times, want once", n)
			}
			if n := logs.count("wssproxy: node healthy", "upstream", host); n != 2 {
				t.Errorf("node healthy logged %d times, want twice (first check, recovery)", n)
			}
			if n := logs.count("wssproxy: every node is unhealthy; still serving"); n != 1 {
				t.Errorf("pool down logged %d times, want once", n)
			}
			if n := logs.count("wssproxy: a node is healthy again"); n != 1 {
				t.Errorf("pool recovery logged %d times, want once", n)
			}
		})
	}
}

// TestHealthFinalityStall: a node whose finalized block trails its best
// by more than MaxFinalityLag is unhealthy until finality resumes.
func TestHealthFinalityStall(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"subscription", "polling"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			node := startNode(t)
			upstream := node.URL()
			if mode == "polling" {
				upstream = noWebSocketNode(t, node)
			}
			p, _, logs := startHealthPool(t, []string{upstream}, newTestClock(), &Options{MaxFinalityLag: 3})
			if mode == "subscription" {
				waitFor(t, "head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
			}
			node.Advance()
			node.StallFinality()
			for range 3 {
				node.Advance()
			}
			p.checkAll()
			waitHeads(t, p, 0, 4, 1)
			p.checkAll()
			wantState(t, p, 0, StateHealthy, "") // 3 behind: at the limit

			node.Advance()
			p.checkAll()
			waitHeads(t, p, 0, 5, 1)
			p.checkAll()
			wantState(t, p, 0, StateFinalityStalled, "finality stalled: finalized #1 trails best #5 by 4 blocks (more than 3)")

			node.ResumeFinality()
			p.checkAll()
			waitHeads(t, p, 0, 5, 5)
			p.checkAll()
			wantState(t, p, 0, StateHealthy, "")
			host := p.backends[0].host
			if n := logs.count("wssproxy: node unhealthy", "upstream", host, "state", StateFinalityStalled); n != 1 {
				t.Errorf("finality stall logged %d times, want once", n)
			}
		})
	}
}

// TestHealthStallTimeoutFromBlockTime: without StallTimeout, the limit is 6
// times the median interval between heads the gateway saw: 20 s blocks
// give 2 minutes.
func TestHealthStallTimeoutFromBlockTime(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	clock := newTestClock()
	p, _, _ := startHealthPool(t, []string{node.URL()}, clock, nil)
	waitFor(t, "head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
	for i := range uint64(5) {
		clock.Advance(20 * time.Second)
		node.Advance()
		waitHeads(t, p, 0, i+1, i+1)
	}
	if got := p.stallTimeout(); got != 2*time.Minute {
		t.Fatalf("stall timeout %v after 20 s blocks, want 2m", got)
	}
	clock.Advance(2 * time.Minute)
	p.checkAll()
	wantState(t, p, 0, StateHealthy, "")
	clock.Advance(time.Second)
	p.checkAll()
	wantState(t, p, 0, StateStalled, "stalled at #5 for 2m1s")
}

// TestHealthTwoNodesOneStalls: with two nodes, new connections go to the
// one whose head moves; the stalled one takes them again once it catches
// up.
func TestHealthTwoNodesOneStalls(t *testing.T) {
	t.Parallel()
	a, b := startNode(t), startNode(t)
	clock := newTestClock()
	p, url, logs := startHealthPool(t, []string{a.URL(), b.URL()}, clock, &Options{StallTimeout: 30 * time.Second})
	waitFor(t, "head subscriptions", func() bool {
		n := p.Nodes()
		return n[0].Heads == "subscription" && n[1].Heads == "subscription"
	})
	a.Advance()
	b.Advance()
	waitHeads(t, p, 0, 1, 1)
	waitHeads(t, p, 1, 1, 1)
	for i := range uint64(4) { // a stops; b moves on, a block every 10 s
		clock.Advance(10 * time.Second)
		b.Advance()
		waitHeads(t, p, 1, i+2, i+2)
	}
	p.checkAll()
	wantState(t, p, 0, StateStalled, "stalled at #1 for 40s")
	st := wantState(t, p, 1, StateHealthy, "")
	if st.Lag != 0 || p.Nodes()[0].Lag != 4 {
		t.Errorf("lags %d and %d, want 4 and 0", p.Nodes()[0].Lag, st.Lag)
	}
	ctx := testCtx(t)
	for i := range 4 {
		c, got := dialTracked(t, p, url)
		if got != 1 {
			t.Fatalf("client %d went to the stalled node", i)
		}
		chainCall(t, ctx, c, i)
	}

	a.SetBestBlock(5) // caught up
	waitHeads(t, p, 0, 5, 5)
	p.checkAll()
	wantState(t, p, 0, StateHealthy, "")
	c, got := dialTracked(t, p, url)
	if got != 0 {
		t.Errorf("with %v connections, a client went to node %d, want the recovered 0", poolConns(p), got)
	}
	chainCall(t, ctx, c, 9)
	if n := logs.count("wssproxy: node unhealthy", "upstream", p.backends[0].host); n != 1 {
		t.Errorf("node 0 unhealthy logged %d times, want once", n)
	}
	if n := logs.count("wssproxy: node unhealthy", "upstream", p.backends[1].host); n != 0 {
		t.Errorf("node 1 unhealthy logged %d times, want never", n)
	}
	if n := logs.count("wssproxy: every node is unhealthy; still serving"); n != 0 {
		t.Errorf("pool down logged %d times with one node healthy", n)
	}
}

// TestHealthJudge: the stall timeout follows the median block time the
// gateway observed (6 blocks, at least 60 s), and judge applies it, the
// finality limit and the pool lag, on synctest's clock.
func TestHealthJudge(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, err := NewPool([]string{"ws://127.0.0.1:1", "ws://127.0.0.1:2"}, &Options{HealthInterval: -1, MaxFinalityLag: 5, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		b := p.backends[0]
		head := func(n uint64) {
			if d, ok := b.health.observeBest(n, time.Now()); ok {
				p.blockTimes.add(d)
			}
			b.health.observeFinalized(n)
		}
		if got := p.stallTimeout(); got != DefaultMinStallTimeout {
			t.Errorf("stall timeout before any head %v, want %v", got, DefaultMinStallTimeout)
		}
		head(10)
		for n := uint64(11); n <= 15; n++ { // 6 s blocks: 36 s, raised to the minimum
			time.Sleep(6 * time.Second)
			head(n)
		}
		if got := p.stallTimeout(); got != DefaultMinStallTimeout {
			t.Errorf("stall timeout with 6 s blocks %v, want %v", got, DefaultMinStallTimeout)
		}
		for n := uint64(16); n <= 30; n += 2 { // two blocks per 24 s: 12 s each, now the median
			time.Sleep(24 * time.Second)
			head(n)
		}
		if got := p.stallTimeout(); got != 72*time.Second {
			t.Fatalf("stall timeout with 12 s blocks %v, want 72s", got)
		}
		time.Sleep(72 * time.Second)
		if err := p.judge(b, time.Now(), 30, p.stallTimeout()); err != nil {
			t.Errorf("at the stall timeout: %v, want healthy", err)
		}
		time.Sleep(time.Second)
		if err := p.judge(b, time.Now(), 30, p.stallTimeout()); err == nil || err.Error() != "stalled at #30 for 1m13s" {
			t.Errorf("past the stall timeout: %v", err)
		}
		head(31)
		b.health.observeFinalized(25)
		if err := p.judge(b, time.Now(), 31, p.stallTimeout()); err == nil || err.Error() != "finality stalled: finalized #25 trails best #31 by 6 blocks (more than 5)" {
			t.Errorf("finality 6 blocks behind, limit 5: %v", err)
		}
		b.health.observeFinalized(26)
		for _, tt := range []struct {
			top  uint64
			want string
		}{{41, ""}, {42, "best block 31 lags the pool's 42 by more than 10"}} {
			err := p.judge(b, time.Now(), tt.top, p.stallTimeout())
			if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
				t.Errorf("pool best %d: %v, want %q", tt.top, err, tt.want)
			}
		}
	})
}

// TestHealthHeadsFallBack: when the head subscriptions' connection is lost
// (the node restarts), the checks poll the heads until the subscriptions
// are back.
func TestHealthHeadsFallBack(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p, _, logs := startHealthPool(t, []string{node.URL()}, newTestClock(), nil)
	waitFor(t, "head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
	node.SetBestBlock(7)
	waitHeads(t, p, 0, 7, 7)

	addr := node.Addr()
	node.Close()
	waitFor(t, "heads polled", func() bool { return p.Nodes()[0].Heads == "polling" })
	if n := logs.count("wssproxy: head subscriptions down; polling heads", "upstream", p.backends[0].host); n != 1 {
		t.Errorf("subscription loss logged %d times, want once", n)
	}
	restarted, err := rpctest.Start(&rpctest.Options{Addr: addr, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("restart the node on %s: %v", addr, err)
	}
	t.Cleanup(func() { restarted.Close() })
	restarted.SetBestBlock(3) // a new chain
	restarted.StallFinality()
	restarted.Advance()
	p.checkAll()
	st := wantState(t, p, 0, StateHealthy, "")
	if st.BestBlock != 4 || st.FinalizedBlock != 3 || st.Heads != "polling" {
		t.Errorf("after the restart %+v, want heads 4 and 3 polled", st)
	}
}

// TestProbeResult: only an answer means the node serves unsafe methods;
// only -32601 means it refused them.
func TestProbeResult(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		reply string
		want  string
	}{
		{`{"id":2,"result":[]}`, UnsafeServed},
		{`{"id":2,"error":{"code":-32601,"message":"RPC call is unsafe to be called externally"}}`, UnsafeRefused},
		{`{"id":2,"error":{"code":-32601,"message":"Method not found"}}`, UnsafeRefused},
		{`{"id":2,"error":{"code":-32603,"message":"Internal error"}}`, UnsafeUnknown},
	} {
		var r healthReply
		if err := json.Unmarshal([]byte(tt.reply), &r); err != nil {
			t.Fatal(err)
		}
		if got := probeResult(r); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.reply, got, tt.want)
		}
	}
}

// TestHealthSilentSubscription: subscriptions the node dropped without a
// word do not pass for a stalled chain: once they are quiet for half the
// stall timeout the checks poll, find the new heads, and subscribe again.
func TestHealthSilentSubscription(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	clock := newTestClock()
	p, _, logs := startHealthPool(t, []string{node.URL()}, clock, nil)
	waitFor(t, "head subscriptions", func() bool { return p.Nodes()[0].Heads == "subscription" })
	node.Advance()
	waitHeads(t, p, 0, 1, 1)

	node.DropSubscriptions()
	node.Advance()
	node.Advance()
	clock.Advance(DefaultMinStallTimeout / 2)
	p.checkAll()
	if s := p.Nodes()[0]; s.BestBlock != 1 {
		t.Fatalf("polled before the subscriptions were quiet for half the stall timeout: %+v", s)
	}
	clock.Advance(time.Second)
	p.checkAll()
	st := wantState(t, p, 0, StateHealthy, "")
	if st.BestBlock != 3 || st.FinalizedBlock != 3 || st.SecondsSinceHead != 0 {
		t.Errorf("after the poll %+v, want heads 3 and 3, just seen", st)
	}
	waitFor(t, "subscribed again", func() bool {
		return logs.count("wssproxy: head subscriptions missed heads; subscribing again") == 1 && p.Nodes()[0].Heads == "subscription"
	})
	node.Advance()
	waitHeads(t, p, 0, 4, 4)
	clock.Advance(DefaultMinStallTimeout)
	p.checkAll()
	wantState(t, p, 0, StateHealthy, "")
	if n := logs.count("wssproxy: node unhealthy"); n != 0 {
		t.Errorf("node unhealthy logged %d times", n)
	}
}
