package metrics

import (
	"expvar"
	"strconv"
	"sync/atomic"
)

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
	NodeGauges                                                // nodes.go
	CacheLookups       map[string]int64                       `json:"cache_lookups_total"` // outcome
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
		NodeGauges:         c.nodeGauges(),
		CacheLookups:       counterValues(c.cache.load()),
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
