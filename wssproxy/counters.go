package wssproxy

import (
	"expvar"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// Counters is a [Metrics] that keeps counts in memory and exports them as
// Prometheus text ([Counters.ServeHTTP], for /metrics) and expvar
// ([Counters.Publish]). Its methods are safe for concurrent use; recording
// an event on a label set seen before takes no lock and does not allocate.
// The zero value is ready to use and empty, as is [NewCounters]'s result.
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
	duration   counterHistogram
}

var _ Metrics = (*Counters)(nil)

// NewCounters returns empty Counters, to pass as the proxy's Metrics and
// serve on /metrics.
func NewCounters() *Counters {
	return new(Counters)
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

// Handshake implements [Metrics].
func (c *Counters) Handshake(upstream, outcome string) {
	k := counterPair{upstream, outcome}
	c.handshakes.get(k, counterPair{OverflowLabel, OverflowLabel}, c.limit()).Add(1)
}

// Refused implements [Metrics].
func (c *Counters) Refused(reason string) {
	c.refusals.get(reason, OverflowLabel, c.limit()).Add(1)
}

// Denied implements [Metrics].
func (c *Counters) Denied(reason string) {
	c.denied.get(reason, OverflowLabel, c.limit()).Add(1)
}

// ConnOpened implements [Metrics].
func (c *Counters) ConnOpened(upstream string) {
	u := c.upstream(upstream)
	u.open.Add(1)
	u.total.Add(1)
}

// ConnClosed implements [Metrics]. A ClientCode below 0 is counted as code
// "none".
func (c *Counters) ConnClosed(upstream string, e ConnEnd) {
	c.upstream(upstream).open.Add(-1)
	k := counterClosed{upstream, e.ClosedBy, max(e.ClientCode, counterCodeNone)}
	other := counterClosed{OverflowLabel, OverflowLabel, counterCodeOther}
	c.closed.get(k, other, c.limit()).Add(1)
	c.duration.observe(connDurationBounds[:], e.Duration.Seconds())
}

// Traffic implements [Metrics]. Deltas below 0 are ignored: counters only
// go up.
func (c *Counters) Traffic(upstream string, toNode bool, msgs, bytes int64) {
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

// NodeDial implements [Metrics]. Failed dials are observed in
// wssgate_node_dial_seconds too, so its _count is all attempts.
func (c *Counters) NodeDial(upstream string, latency time.Duration, err error) {
	u := c.upstream(upstream)
	u.dial.observe(nodeDialBounds[:], latency.Seconds())
	if err != nil {
		u.dialErrors.Add(1)
	}
}

// NodeHealth implements [Metrics].
func (c *Counters) NodeHealth(upstream string, healthy bool) {
	u := c.upstream(upstream)
	h := int32(counterUnhealthy)
	if healthy {
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

// Snapshot is a copy of the values of [Counters], as returned by
// [Counters.Snapshot] and published by [Counters.Publish]. Each field holds
// the metric named in its JSON tag with the "wssgate_" prefix; nested maps
// are keyed by label values in the order given. Maps are never nil.
type Snapshot struct {
	ConnectionsOpen    map[string]int64                       `json:"connections_open"`         // upstream
	Connections        map[string]int64                       `json:"connections_total"`        // upstream
	ConnectionsClosed  map[string]map[string]map[string]int64 `json:"connections_closed_total"` // upstream, closed_by, code
	ConnectionDuration HistogramSnapshot                      `json:"connection_duration_seconds"`
	Handshakes         map[string]map[string]int64            `json:"handshakes_total"`         // upstream, outcome
	Refusals           map[string]int64                       `json:"refusals_total"`           // reason
	Messages           map[string]map[string]int64            `json:"messages_total"`           // upstream, direction
	Bytes              map[string]map[string]int64            `json:"bytes_total"`              // upstream, direction
	NodeDial           map[string]HistogramSnapshot           `json:"node_dial_seconds"`        // upstream
	NodeDialErrors     map[string]int64                       `json:"node_dial_errors_total"`   // upstream
	NodeHealthy        map[string]bool                        `json:"node_healthy"`             // upstream, once checked
	NodeHealthChecks   map[string]map[string]int64            `json:"node_health_checks_total"` // upstream, result
	Denied             map[string]int64                       `json:"denied_calls_total"`       // reason
}

// HistogramSnapshot is a histogram's state. Bucket counts are cumulative;
// Count is also the +Inf bucket's count.
type HistogramSnapshot struct {
	Buckets []HistogramBucket `json:"buckets"`
	Count   int64             `json:"count"`
	Sum     float64           `json:"sum"`
}

// HistogramBucket counts observations less than or equal to UpperBound.
type HistogramBucket struct {
	UpperBound float64 `json:"le"`
	Count      int64   `json:"count"`
}

// Snapshot returns the current values. Each value is read atomically, but
// not all of them at one instant.
func (c *Counters) Snapshot() Snapshot {
	s := Snapshot{
		ConnectionsOpen:    map[string]int64{},
		Connections:        map[string]int64{},
		ConnectionsClosed:  map[string]map[string]map[string]int64{},
		ConnectionDuration: c.duration.snapshot(connDurationBounds[:]),
		Handshakes:         map[string]map[string]int64{},
		Refusals:           counterValues(c.refusals.load()),
		Messages:           map[string]map[string]int64{},
		Bytes:              map[string]map[string]int64{},
		NodeDial:           map[string]HistogramSnapshot{},
		NodeDialErrors:     map[string]int64{},
		NodeHealthy:        map[string]bool{},
		NodeHealthChecks:   map[string]map[string]int64{},
		Denied:             counterValues(c.denied.load()),
	}
	for name, u := range c.upstreams.load() {
		s.ConnectionsOpen[name] = u.open.Load()
		s.Connections[name] = u.total.Load()
		s.Messages[name] = map[string]int64{"to_node": u.msgs[counterToNode].Load(), "to_client": u.msgs[counterToClient].Load()}
		s.Bytes[name] = map[string]int64{"to_node": u.bytes[counterToNode].Load(), "to_client": u.bytes[counterToClient].Load()}
		s.NodeDial[name] = u.dial.snapshot(nodeDialBounds[:])
		s.NodeDialErrors[name] = u.dialErrors.Load()
		if h := u.health.Load(); h != 0 {
			s.NodeHealthy[name] = h == counterHealthy
		}
		s.NodeHealthChecks[name] = map[string]int64{
			"healthy":   u.healthChecks[counterHealthy-1].Load(),
			"unhealthy": u.healthChecks[counterUnhealthy-1].Load(),
		}
	}
	for k, v := range c.handshakes.load() {
		counterInner(s.Handshakes, k.a)[k.b] = v.Load()
	}
	for k, v := range c.closed.load() {
		byCode := counterInner(counterInner(s.ConnectionsClosed, k.upstream), k.closedBy)
		byCode[counterCode(k.code)] = v.Load()
	}
	return s
}

func counterValues(m map[string]*atomic.Int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v.Load()
	}
	return out
}

// counterInner returns m[k], adding an empty map first if needed.
func counterInner[V any](m map[string]map[string]V, k string) map[string]V {
	in := m[k]
	if in == nil {
		in = map[string]V{}
		m[k] = in
	}
	return in
}

func counterCode(code int) string {
	switch code {
	case counterCodeNone:
		return "none"
	case counterCodeOther:
		return OverflowLabel
	}
	return strconv.Itoa(code)
}

// Publish publishes a JSON [Snapshot] under name in expvar, to be served
// by expvar.Handler (/debug/vars). Like expvar.Publish, it panics if name is
// already published, so call it once per name, for example from main.
func (c *Counters) Publish(name string) {
	expvar.Publish(name, expvar.Func(func() any { return c.Snapshot() }))
}

// ServeHTTP serves the metrics in the Prometheus text format to GET and
// HEAD requests, for a /metrics endpoint.
func (c *Counters) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "wssproxy: metrics need GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	b := c.Snapshot().appendPrometheus(nil)
	w.Header().Set("Content-Type", promContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b) // an error means the scraper went away; nothing to do
}

// WritePrometheus writes the metrics to w in the Prometheus text exposition
// format 0.0.4, with HELP and TYPE lines, series sorted by label values.
func (c *Counters) WritePrometheus(w io.Writer) error {
	_, err := w.Write(c.Snapshot().appendPrometheus(nil))
	return err
}

func (s Snapshot) appendPrometheus(b []byte) []byte {
	p := promWriter{b: b}
	p.family1("connections_open", "gauge", "WebSocket connections open.", "upstream", s.ConnectionsOpen)
	p.family1("connections_total", "counter", "WebSocket connections opened.", "upstream", s.Connections)
	if len(s.ConnectionsClosed) > 0 {
		p.header("connections_closed_total", "counter", "WebSocket connections closed, by who closed them and the close code sent to the client.")
		for _, u := range sortedKeys(s.ConnectionsClosed) {
			for _, by := range sortedKeys(s.ConnectionsClosed[u]) {
				for _, code := range sortedKeys(s.ConnectionsClosed[u][by]) {
					p.sample("connections_closed_total", "", s.ConnectionsClosed[u][by][code], "upstream", u, "closed_by", by, "code", code)
				}
			}
		}
	}
	p.header("connection_duration_seconds", "histogram", "How long WebSocket connections lasted.")
	p.histogram("connection_duration_seconds", s.ConnectionDuration)
	p.counter2("handshakes_total", "WebSocket handshakes, by outcome: ok or the refusal reason.", "upstream", "outcome", s.Handshakes)
	p.family1("refusals_total", "counter", "Requests refused, by reason.", "reason", s.Refusals)
	p.counter2("messages_total", "WebSocket messages proxied, by direction.", "upstream", "direction", s.Messages)
	p.counter2("bytes_total", "WebSocket payload bytes proxied, by direction.", "upstream", "direction", s.Bytes)
	if len(s.NodeDial) > 0 {
		p.header("node_dial_seconds", "histogram", "Time taken to dial the node, failed dials included.")
		for _, u := range sortedKeys(s.NodeDial) {
			p.histogram("node_dial_seconds", s.NodeDial[u], "upstream", u)
		}
	}
	p.family1("node_dial_errors_total", "counter", "Failed dials to the node.", "upstream", s.NodeDialErrors)
	healthy := make(map[string]int64, len(s.NodeHealthy))
	for u, h := range s.NodeHealthy {
		healthy[u] = 0
		if h {
			healthy[u] = 1
		}
	}
	p.family1("node_healthy", "gauge", "Whether the node's last health check passed (1) or failed (0).", "upstream", healthy)
	p.counter2("node_health_checks_total", "Node health checks, by result.", "upstream", "result", s.NodeHealthChecks)
	p.family1("denied_calls_total", "counter", "JSON-RPC calls answered by the gateway instead of the node, by reason.", "reason", s.Denied)
	return p.b
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// promWriter appends the Prometheus text format. Names get the wssgate_
// prefix.
type promWriter struct{ b []byte }

func (p *promWriter) header(name, typ, help string) {
	p.b = append(p.b, "# HELP wssgate_"...)
	p.b = append(p.b, name...)
	p.b = append(p.b, ' ')
	p.b = append(p.b, help...) // constant; nothing to escape
	p.b = append(p.b, "\n# TYPE wssgate_"...)
	p.b = append(p.b, name...)
	p.b = append(p.b, ' ')
	p.b = append(p.b, typ...)
	p.b = append(p.b, '\n')
}

func (p *promWriter) family1(name, typ, help, label string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	p.header(name, typ, help)
	for _, k := range sortedKeys(m) {
		p.sample(name, "", m[k], label, k)
	}
}

func (p *promWriter) counter2(name, help, label1, label2 string, m map[string]map[string]int64) {
	if len(m) == 0 {
		return
	}
	p.header(name, "counter", help)
	for _, k1 := range sortedKeys(m) {
		for _, k2 := range sortedKeys(m[k1]) {
			p.sample(name, "", m[k1][k2], label1, k1, label2, k2)
		}
	}
}

// histogram writes the cumulative buckets, +Inf, _sum and _count; labels
// come before le.
func (p *promWriter) histogram(name string, h HistogramSnapshot, labels ...string) {
	for _, b := range h.Buckets {
		le := strconv.FormatFloat(b.UpperBound, 'g', -1, 64)
		p.sample(name, "_bucket", b.Count, append(labels, "le", le)...)
	}
	p.sample(name, "_bucket", h.Count, append(labels, "le", "+Inf")...)
	p.b = append(p.b, "wssgate_"...)
	p.b = append(p.b, name...)
	p.b = append(p.b, "_sum"...)
	p.labels(labels)
	p.b = append(p.b, ' ')
	p.b = strconv.AppendFloat(p.b, h.Sum, 'g', -1, 64)
	p.b = append(p.b, '\n')
	p.sample(name, "_count", h.Count, labels...)
}

// sample writes one line; labels alternate names and values.
func (p *promWriter) sample(name, suffix string, v int64, labels ...string) {
	p.b = append(p.b, "wssgate_"...)
	p.b = append(p.b, name...)
	p.b = append(p.b, suffix...)
	p.labels(labels)
	p.b = append(p.b, ' ')
	p.b = strconv.AppendInt(p.b, v, 10)
	p.b = append(p.b, '\n')
}

func (p *promWriter) labels(labels []string) {
	if len(labels) == 0 {
		return
	}
	p.b = append(p.b, '{')
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			p.b = append(p.b, ',')
		}
		p.b = append(p.b, labels[i]...)
		p.b = append(p.b, `="`...)
		p.b = append(p.b, promEscaper.Replace(strings.ToValidUTF8(labels[i+1], "\uFFFD"))...)
		p.b = append(p.b, '"')
	}
	p.b = append(p.b, '}')
}

// promEscaper escapes label values as the text format requires.
var promEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
