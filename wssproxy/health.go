package wssproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Node states, as [NodeStatus].State reports them. Every state but
// StateHealthy keeps new connections away from the node.
const (
	StateHealthy         = "healthy"
	StateDown            = "down"             // unreachable, or its connections fail
	StateSyncing         = "syncing"          // system_health says isSyncing
	StateNoPeers         = "no_peers"         // no peers, though it should have some
	StateStalled         = "stalled"          // best block still for longer than StallTimeout
	StateFinalityStalled = "finality_stalled" // finalized block more than MaxFinalityLag behind best
	StateBehind          = "behind"           // more than MaxBlockLag behind the pool's best node
)

// healthError is a failed check: the state it puts the node in, and why.
type healthError struct{ state, msg string }

func (e *healthError) Error() string { return e.msg }

func unhealthy(state, format string, args ...any) error {
	return &healthError{state, fmt.Sprintf(format, args...)}
}

// nodeHealth is what the gateway knows of one node's health. Its fields
// are guarded by mu.
type nodeHealth struct {
	mu              sync.Mutex
	state, reason   string
	best, finalized uint64
	headAt          time.Time // when best last changed; zero until a head is seen
	finalizedKnown  bool
	peers           int
	syncing         bool
	unsafe          string // Unsafe* constant; "" until the first probe
	subscribed      bool   // heads come from the subscriptions, not polling
	seq             uint64 // counts heads from the subscription
	failures        uint64 // counts failed connections to the node
	resubscribe     func() // while subscribed: drops the head connection to subscribe again
}

// observeBest records best block n from the subscription, seen at now. It
// returns the time per block since the previous head if n is higher, for
// the block time median.
func (h *nodeHealth) observeBest(n uint64, now time.Time) (perBlock time.Duration, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return h.setBestLocked(n, now)
}

func (h *nodeHealth) setBestLocked(n uint64, now time.Time) (perBlock time.Duration, ok bool) {
	if !h.headAt.IsZero() && n == h.best {
		return 0, false
	}
	if !h.headAt.IsZero() && n > h.best {
		perBlock, ok = now.Sub(h.headAt)/time.Duration(n-h.best), true
	}
	h.best, h.headAt = n, now
	return perBlock, ok
}

// observeFinalized records finalized block n from the subscription.
func (h *nodeHealth) observeFinalized(n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	h.finalized, h.finalizedKnown = n, true
}

// pollStart tells a check whether to poll the heads, and returns the
// token for observePolled. It polls while the subscriptions are down, and
// while they have been quiet for half the stall timeout: a subscription
// the node dropped without a word must not pass for a stalled chain.
func (h *nodeHealth) pollStart(now time.Time, stall time.Duration) (poll bool, token uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	quiet := stall > 0 && !h.headAt.IsZero() && now.Sub(h.headAt) > stall/2
	return !h.subscribed || quiet, h.seq
}

// observePolled records the best and finalized blocks a poll found, unless
// the subscription reported heads since token was taken. If the
// subscription is up yet missed a head the poll found, it is dropped, to
// be made again.
func (h *nodeHealth) observePolled(token, best, finalized uint64, now time.Time) (perBlock time.Duration, ok bool) {
	h.mu.Lock()
	if token != h.seq {
		h.mu.Unlock()
		return 0, false
	}
	var resubscribe func()
	if h.subscribed && best != h.best {
		resubscribe = h.resubscribe
	}
	h.finalized, h.finalizedKnown = finalized, true
	perBlock, ok = h.setBestLocked(best, now)
	h.mu.Unlock()
	if resubscribe != nil {
		resubscribe()
	}
	return perBlock, ok
}

func (h *nodeHealth) setResubscribe(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resubscribe = f
}

func (h *nodeHealth) setSubscribed(on bool) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed = h.subscribed != on
	h.subscribed = on
	return changed
}

// blockTimes keeps the last intervals between heads that the gateway
// observed, on any node, to derive the stall timeout from the chain's
// block time.
type blockTimes struct {
	mu   sync.Mutex
	ring [64]time.Duration
	n    int // samples stored, up to len(ring)
	next int
}

func (bt *blockTimes) add(d time.Duration) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.ring[bt.next] = d
	bt.next = (bt.next + 1) % len(bt.ring)
	bt.n = min(bt.n+1, len(bt.ring))
}

// median returns the median interval, or 0 before any was observed.
func (bt *blockTimes) median() time.Duration {
	bt.mu.Lock()
	s := slices.Clone(bt.ring[:bt.n])
	bt.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[len(s)/2]
}

// stallTimeout is how long a best block may stand still; 0 means never
// stalled.
func (p *Proxy) stallTimeout() time.Duration {
	switch {
	case p.opts.StallTimeout > 0:
		return p.opts.StallTimeout
	case p.opts.StallTimeout < 0:
		return 0
	}
	return max(DefaultMinStallTimeout, StallTimeoutBlocks*p.blockTimes.median())
}

// healthLoop checks every node each HealthInterval, and keeps a head
// subscription on each, until the proxy closes.
func (p *Proxy) healthLoop() {
	defer p.healthDone.Done()
	ctx, cancel := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()
	for _, b := range p.backends {
		if p.hub != nil { // shared mode: over the hub's connections
			watchers.Go(func() { p.hub.watchHeads(ctx, b) })
			continue
		}
		watchers.Go(func() { p.watchHeads(ctx, b) })
	}
	t := time.NewTicker(p.opts.HealthInterval)
	defer t.Stop()
	for {
		p.checkAll()
		select {
		case <-t.C:
		case <-p.draining:
			return
		}
	}
}

// checkAll checks the nodes concurrently, then judges each on its heads:
// stalled, finality stalled, or lagging the best of all by more than
// MaxBlockLag.
func (p *Proxy) checkAll() {
	p.checkMu.Lock()
	defer p.checkMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.HandshakeTimeout)
	defer cancel()
	go func() { // stop early when the proxy closes
		select {
		case <-p.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	errs := make([]error, len(p.backends))
	tokens := make([]uint64, len(p.backends))
	for i, b := range p.backends {
		b.health.mu.Lock()
		tokens[i] = b.health.failures
		b.health.mu.Unlock()
	}
	var wg sync.WaitGroup
	for i, b := range p.backends {
		wg.Go(func() { errs[i] = p.check(ctx, b) })
	}
	wg.Wait()
	var top uint64
	for i, b := range p.backends {
		if errs[i] == nil {
			b.health.mu.Lock()
			top = max(top, b.health.best)
			b.health.mu.Unlock()
		}
	}
	now := p.opts.now()
	stall := p.stallTimeout()
	for i, b := range p.backends {
		err := errs[i]
		if err == nil {
			err = p.judge(b, now, top, stall)
		}
		p.record(b, err, &tokens[i])
	}
}

// judge checks a reachable node's heads.
func (p *Proxy) judge(b *backend, now time.Time, top uint64, stall time.Duration) error {
	h := &b.health
	h.mu.Lock()
	best, fin, finKnown, headAt := h.best, h.finalized, h.finalizedKnown, h.headAt
	h.mu.Unlock()
	if headAt.IsZero() {
		return nil // no head yet: nothing to judge
	}
	if since := now.Sub(headAt); stall > 0 && since > stall {
		return unhealthy(StateStalled, "stalled at #%d for %s", best, shortDuration(since))
	}
	if finKnown && best > fin && best-fin > p.opts.MaxFinalityLag {
		return unhealthy(StateFinalityStalled, "finality stalled: finalized #%d trails best #%d by %d blocks (more than %d)",
			fin, best, best-fin, p.opts.MaxFinalityLag)
	}
	if top > best && top-best > p.opts.MaxBlockLag {
		return unhealthy(StateBehind, "best block %d lags the pool's %d by more than %d", best, top, p.opts.MaxBlockLag)
	}
	return nil
}

// shortDuration formats d to the second, without trailing zero units:
// "3m", "1h2m", "45s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// recordHealth records a failed connection to b, or the outcome of a
// check (nil for healthy). It logs each change of the node's state once,
// and the pool's turn to all unhealthy and back.
func (p *Proxy) recordHealth(b *backend, err error) { p.record(b, err, nil) }

// record records err for b. A check passes checkToken, the node's failure
// count when it started: if a connection to the node failed since, the
// check's success is stale and dropped.
func (p *Proxy) record(b *backend, err error, checkToken *uint64) {
	state, why := StateHealthy, ""
	if err != nil {
		state, why = StateDown, err.Error()
		if he, ok := errors.AsType[*healthError](err); ok {
			state = he.state
		}
	}
	h := &b.health
	h.mu.Lock()
	if err == nil && checkToken != nil && *checkToken != h.failures {
		h.mu.Unlock()
		return
	}
	if err != nil && checkToken == nil {
		h.failures++
	}
	changed := h.state != state
	h.state, h.reason = state, why
	b.healthy.Store(err == nil)
	h.mu.Unlock()
	if changed && p.warm != nil { // fill or drop its warm connections
		p.warm.poke()
	}
	p.metrics.NodeHealth(b.host, err)
	p.metrics.NodeState(b.host, p.nodeStatus(b))
	if changed {
		level, msg := slog.LevelInfo, "wssproxy: node healthy"
		if err != nil {
			level, msg = slog.LevelWarn, "wssproxy: node unhealthy"
		}
		p.log.LogAttrs(context.Background(), level, msg, slog.String("upstream", b.host),
			slog.String("state", state), slog.String("reason", why))
	}
	p.recordPool()
}

// recordPool logs once when every node has turned unhealthy, and once when
// one is healthy again.
func (p *Proxy) recordPool() {
	down := !p.anyHealthy()
	if p.allDown.Swap(down) == down {
		return
	}
	if !down {
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "wssproxy: a node is healthy again")
		return
	}
	msg := "wssproxy: every node is unhealthy; still serving"
	if p.opts.StrictHealth {
		msg = "wssproxy: every node is unhealthy; refusing new connections (StrictHealth)"
	}
	p.log.LogAttrs(context.Background(), slog.LevelWarn, msg, slog.String("reason", p.poolReason()))
}

// anyHealthy reports whether the last check of some node passed.
func (p *Proxy) anyHealthy() bool {
	for _, b := range p.backends {
		if b.healthy.Load() {
			return true
		}
	}
	return false
}

// poolReason joins the nodes' reasons: "host: reason; host: reason".
func (p *Proxy) poolReason() string {
	parts := make([]string, 0, len(p.backends))
	for _, b := range p.backends {
		b.health.mu.Lock()
		parts = append(parts, b.host+": "+b.health.reason)
		b.health.mu.Unlock()
	}
	return strings.Join(parts, "; ")
}
