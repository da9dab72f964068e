package metrics

import (
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/wssproxy"
)

// promContentType is the Prometheus text exposition format 0.0.4.
const promContentType = "text/plain; version=0.0.4; charset=utf-8"

// DefaultMaxSeries is how many label sets [Counters] keeps per metric if
// MaxSeries is zero.
const DefaultMaxSeries = 1000

// OverflowLabel is the value every label of a metric takes once the
// metric holds [Counters.MaxSeries] label sets.
const OverflowLabel = "other"

// Bucket upper bounds, in seconds.
var (
	connDurationBounds = [...]float64{1, 10, 60, 600, 3600, 21600, 86400}
	nodeDialBounds     = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// counterCodeNone and counterCodeOther are the code label of
// wssgate_connections_closed_total when no close code was sent and on
// overflow.
const (
	counterCodeNone  = -1
	counterCodeOther = math.MinInt
)

// Counters keeps the proxy's metrics in memory and exports them as
// Prometheus text ([Counters.ServeHTTP], for /metrics) and expvar
// ([Counters.Publish]). Pass [Counters.Hooks] as the proxy's
// Options.Metrics. It is safe for concurrent use; recording an event on a
// label set seen before takes no lock and does not allocate. The zero value
// is ready to use and empty, as is [NewCounters]'s result.
//
// # Cardinality
//
// Label values come from the proxy: configured upstreams, fixed reason
// strings and close codes. Close codes are partly the client's choice
// (3000-4999 are free for applications), so a hostile client could mint a
// series per code. Each metric therefore keeps at most MaxSeries label
// sets; once full, events on new label sets are counted in one series whose
// every label is [OverflowLabel], so totals stay exact and memory bounded.
type Counters struct {
	// MaxSeries caps the label sets kept per metric, the overflow series
	// included. Set it before first use. If zero or less,
	// [DefaultMaxSeries] applies.
	MaxSeries int

	upstreams  counterSet[string, counterUpstream]
	handshakes counterSet[counterPair, atomic.Int64] // upstream, outcome
	closed     counterSet[counterClosed, atomic.Int64]
	refusals   counterSet[string, atomic.Int64]
	denied     counterSet[string, atomic.Int64]
	cache      counterSet[string, atomic.Int64] // outcome
	duration   counterHistogram
	nodes      counterSet[string, counterNode] // nodes.go
}

// NewCounters returns empty Counters.
func NewCounters() *Counters {
	return new(Counters)
}

// Hooks returns proxy hooks that record into c: every hook of
// [wssproxy.Metrics] is set. Each call returns a new struct, which the
// caller may extend (for example wrap a hook to log as well).
func (c *Counters) Hooks() *wssproxy.Metrics {
	return &wssproxy.Metrics{
		Refused:    c.refused,
		ConnOpened: c.connOpened,
		ConnClosed: c.connClosed,
		Traffic:    c.traffic,
		NodeDial:   c.nodeDial,
		NodeHealth: c.nodeHealth,
		NodeState:  c.nodeState,
		Denied:     c.deniedCall,
		Cache:      c.cacheLookup,
	}
}

// counterPair is a two-label key.
type counterPair struct{ a, b string }

// counterClosed keys wssgate_connections_closed_total. The code stays an
// int so that recording does not format (and allocate) it.
type counterClosed struct {
	upstream, closedBy string
	code               int
}

// counterUpstream holds the per-upstream series.
type counterUpstream struct {
	open, total  atomic.Int64
	msgs, bytes  [2]atomic.Int64 // indexed by counterToNode, counterToClient
	dial         counterHistogram
	dialErrors   atomic.Int64
	health       atomic.Int32    // 0 unknown, else counterHealthy or counterUnhealthy
	healthChecks [2]atomic.Int64 // indexed by health-1
}

const (
	counterToNode   = 0
	counterToClient = 1

	counterHealthy   = 1
	counterUnhealthy = 2
)

// handshakeOK is the outcome label of a successful handshake.
const handshakeOK = "ok"

func (c *Counters) handshake(upstream, outcome string) {
	k := counterPair{upstream, outcome}
	c.handshakes.get(k, counterPair{OverflowLabel, OverflowLabel}, c.limit()).Add(1)
}

// refused counts wssgate_refusals_total and, for a WebSocket handshake,
// wssgate_handshakes_total with upstream "" (no node was assigned).
func (c *Counters) refused(r wssproxy.Refusal) {
	c.refusals.get(r.Reason, OverflowLabel, c.limit()).Add(1)
	if r.WebSocket {
		c.handshake("", r.Reason)
	}
}

func (c *Counters) deniedCall(reason string) {
	c.denied.get(reason, OverflowLabel, c.limit()).Add(1)
}

// cacheLookup counts a lookup of shared mode's response cache.
func (c *Counters) cacheLookup(_ string, hit bool) {
	outcome := "miss"
	if hit {
		outcome = "hit"
	}
	c.cache.get(outcome, OverflowLabel, c.limit()).Add(1)
}

// connOpened counts a successful handshake and an open connection.
func (c *Counters) connOpened(upstream string) {
	u := c.upstream(upstream)
	u.open.Add(1)
	u.total.Add(1)
	c.handshake(upstream, handshakeOK)
}

// connClosed counts a ClientCode below 0 as code "none".
func (c *Counters) connClosed(upstream string, e wssproxy.ConnEnd) {
	c.upstream(upstream).open.Add(-1)
	k := counterClosed{upstream, e.ClosedBy, max(e.ClientCode, counterCodeNone)}
	other := counterClosed{OverflowLabel, OverflowLabel, counterCodeOther}
	c.closed.get(k, other, c.limit()).Add(1)
	c.duration.observe(connDurationBounds[:], e.Duration.Seconds())
}

// traffic ignores deltas below 0: counters only go up.
func (c *Counters) traffic(upstream string, toNode bool, msgs, bytes int64) {
	u := c.upstream(upstream)
	d := counterToClient
	if toNode {
		d = counterToNode
	}
	if msgs > 0 {
		u.msgs[d].Add(msgs)
	}
	if bytes > 0 {
		u.bytes[d].Add(bytes)
	}
}

// nodeDial observes failed dials in wssgate_node_dial_seconds too, so its
// _count is all attempts.
func (c *Counters) nodeDial(upstream string, latency time.Duration, err error) {
	u := c.upstream(upstream)
	u.dial.observe(nodeDialBounds[:], latency.Seconds())
	if err != nil {
		u.dialErrors.Add(1)
	}
}

func (c *Counters) nodeHealth(upstream string, err error) {
	u := c.upstream(upstream)
	h := int32(counterUnhealthy)
	if err == nil {
		h = counterHealthy
	}
	u.health.Store(h)
	u.healthChecks[h-1].Add(1)
}

func (c *Counters) upstream(upstream string) *counterUpstream {
	return c.upstreams.get(upstream, OverflowLabel, c.limit())
}

func (c *Counters) limit() int {
	if c.MaxSeries <= 0 {
		return DefaultMaxSeries
	}
	return c.MaxSeries
}

// counterSet maps label sets to series. Readers load an immutable map
// without locking; adding a series copies the map under mu. Series are
// never removed, so a label set keeps its series (or the overflow one).
type counterSet[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]*V]
}

// get returns the series for k, creating it if needed, or the series for
// other once the set holds limit-1 others.
func (s *counterSet[K, V]) get(k, other K, limit int) *V {
	if m := s.m.Load(); m != nil {
		if v := (*m)[k]; v != nil {
			return v
		}
	}
	return s.add(k, other, limit)
}

func (s *counterSet[K, V]) add(k, other K, limit int) *V {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	if v := old[k]; v != nil {
		return v
	}
	if k != other && len(old) >= limit-1 {
		k = other
		if v := old[k]; v != nil {
			return v
		}
	}
	m := make(map[K]*V, len(old)+1)
	maps.Copy(m, old)
	v := new(V)
	m[k] = v
	s.m.Store(&m)
	return v
}

// load returns the current map, which callers must not modify.
func (s *counterSet[K, V]) load() map[K]*V {
	if m := s.m.Load(); m != nil {
		return *m
	}
	return nil
}

// counterHistogram counts observations per bucket; counts[len(bounds)] is
// the +Inf bucket. A mutex keeps buckets, count and sum consistent with each
// other; observations happen per connection or dial, not per message.
type counterHistogram struct {
	mu     sync.Mutex
	counts [len(nodeDialBounds) + 1]int64
	sum    float64
}

func (h *counterHistogram) observe(bounds []float64, v float64) {
	// A clock step back is not a negative duration. BinarySearch finds the
	// first bound >= v, as le is inclusive.
	v = max(v, 0)
	i, _ := slices.BinarySearch(bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

func (h *counterHistogram) snapshot(bounds []float64) HistogramSnapshot {
	h.mu.Lock()
	counts, sum := h.counts, h.sum
	h.mu.Unlock()
	s := HistogramSnapshot{Buckets: make([]HistogramBucket, len(bounds)), Sum: sum}
	for i, b := range bounds {
		s.Count += counts[i]
		s.Buckets[i] = HistogramBucket{UpperBound: b, Count: s.Count}
	}
	s.Count += counts[len(bounds)]
	return s
}
