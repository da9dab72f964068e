package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/wssgate/wssgate/wssproxy"
)

// countersGolden is the whole exposition after countersScenario.
const countersGolden = `# HELP wssgate_connections_open WebSocket connections open.
# TYPE wssgate_connections_open gauge
wssgate_connections_open{upstream="node:9944"} 1
# HELP wssgate_connections_total WebSocket connections opened.
# TYPE wssgate_connections_total counter
wssgate_connections_total{upstream="node:9944"} 2
# HELP wssgate_connections_closed_total WebSocket connections closed, by who closed them and the close code sent to the client.
# TYPE wssgate_connections_closed_total counter
wssgate_connections_closed_total{upstream="node:9944",closed_by="client",code="1000"} 1
# HELP wssgate_connection_duration_seconds How long WebSocket connections lasted.
# TYPE wssgate_connection_duration_seconds histogram
wssgate_connection_duration_seconds_bucket{le="1"} 0
wssgate_connection_duration_seconds_bucket{le="10"} 0
wssgate_connection_duration_seconds_bucket{le="60"} 0
wssgate_connection_duration_seconds_bucket{le="600"} 1
wssgate_connection_duration_seconds_bucket{le="3600"} 1
wssgate_connection_duration_seconds_bucket{le="21600"} 1
wssgate_connection_duration_seconds_bucket{le="86400"} 1
wssgate_connection_duration_seconds_bucket{le="+Inf"} 1
wssgate_connection_duration_seconds_sum 90.5
wssgate_connection_duration_seconds_count 1
# HELP wssgate_handshakes_total WebSocket handshakes, by outcome: ok or the refusal reason.
# TYPE wssgate_handshakes_total counter
wssgate_handshakes_total{upstream="",outcome="origin"} 1
wssgate_handshakes_total{upstream="node:9944",outcome="ok"} 2
# HELP wssgate_refusals_total Requests refused, by reason.
# TYPE wssgate_refusals_total counter
wssgate_refusals_total{reason="origin"} 1
# HELP wssgate_messages_total WebSocket messages proxied, by direction.
# TYPE wssgate_messages_total counter
wssgate_messages_total{upstream="node:9944",direction="to_client"} 3
wssgate_messages_total{upstream="node:9944",direction="to_node"} 2
# HELP wssgate_bytes_total WebSocket payload bytes proxied, by direction.
# TYPE wssgate_bytes_total counter
wssgate_bytes_total{upstream="node:9944",direction="to_client"} 5000
wssgate_bytes_total{upstream="node:9944",direction="to_node"} 100
# HELP wssgate_node_dial_seconds Time taken to dial the node, failed dials included.
# TYPE wssgate_node_dial_seconds histogram
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.001"} 0
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.0025"} 0
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.005"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.01"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.025"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.05"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.1"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.25"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="0.5"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="1"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="2.5"} 1
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="5"} 2
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="10"} 2
wssgate_node_dial_seconds_bucket{upstream="node:9944",le="+Inf"} 2
wssgate_node_dial_seconds_sum{upstream="node:9944"} 5.004
wssgate_node_dial_seconds_count{upstream="node:9944"} 2
# HELP wssgate_node_dial_errors_total Failed dials to the node.
# TYPE wssgate_node_dial_errors_total counter
wssgate_node_dial_errors_total{upstream="node:9944"} 1
# HELP wssgate_node_healthy Whether the node's last health check passed (1) or failed (0).
# TYPE wssgate_node_healthy gauge
wssgate_node_healthy{upstream="node:9944"} 1
# HELP wssgate_node_health_checks_total Node health checks, by result.
# TYPE wssgate_node_health_checks_total counter
wssgate_node_health_checks_total{upstream="node:9944",result="healthy"} 1
wssgate_node_health_checks_total{upstream="node:9944",result="unhealthy"} 1
# HELP wssgate_denied_calls_total JSON-RPC calls answered by the gateway instead of the node, by reason.
# TYPE wssgate_denied_calls_total counter
wssgate_denied_calls_total{reason="method"} 2
wssgate_denied_calls_total{reason="rate"} 1
# HELP wssgate_cache_lookups_total Shared mode's response cache lookups, by outcome (hit or miss).
# TYPE wssgate_cache_lookups_total counter
wssgate_cache_lookups_total{outcome="hit"} 2
wssgate_cache_lookups_total{outcome="miss"} 1
`

func countersScenario(c *Counters) {
	const up = "node:9944"
	c.refused(wssproxy.Refusal{Reason: wssproxy.RefusalOrigin, Status: 403, WebSocket: true})
	c.nodeDial(up, 4*time.Millisecond, nil)
	c.nodeDial(up, 5*time.Second, errors.New("timeout"))
	c.connOpened(up)
	c.connOpened(up)
	c.traffic(up, true, 2, 100)
	c.traffic(up, false, 3, 5000)
	c.nodeHealth(up, healthErr(false))
	c.nodeHealth(up, healthErr(true))
	c.connClosed(up, wssproxy.ConnEnd{Duration: 90500 * time.Millisecond, ClosedBy: "client", ClientCode: 1000})
	c.deniedCall("method")
	c.deniedCall("method")
	c.deniedCall("rate")
	c.cacheLookup("system_chain", false)
	c.cacheLookup("system_chain", true)
	c.cacheLookup("chain_getBlock", true)
}

func TestCountersGolden(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	countersScenario(c)
	var buf bytes.Buffer
	if err := c.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(countersGolden, buf.String()); diff != "" {
		t.Errorf("WritePrometheus (-want +got):\n%s", diff)
	}
	parsePrometheus(t, buf.String()) // and it parses
}

func TestCountersEmpty(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := NewCounters().WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	p := parsePrometheus(t, buf.String())
	// Only the unlabelled histogram has series before any event.
	if diff := cmp.Diff([]string{"wssgate_connection_duration_seconds"}, slices.Sorted(maps.Keys(p.types))); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
	if got := p.samples[`wssgate_connection_duration_seconds_count`]; got != 0 {
		t.Errorf("count = %v, want 0", got)
	}
}

func TestCountersEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(c *Counters)
		want    map[string]float64 // a subset of the samples
	}{{
		name: "open and close",
		prepare: func(c *Counters) {
			c.connOpened("a:1")
			c.connOpened("a:1")
			c.connOpened("b:2")
			c.connClosed("a:1", wssproxy.ConnEnd{Duration: time.Second, ClosedBy: "node", ClientCode: 1001})
		},
		want: map[string]float64{
			`wssgate_connections_open{upstream="a:1"}`:                                      1,
			`wssgate_connections_open{upstream="b:2"}`:                                      1,
			`wssgate_connections_total{upstream="a:1"}`:                                     2,
			`wssgate_connections_total{upstream="b:2"}`:                                     1,
			`wssgate_connections_closed_total{closed_by="node",code="1001",upstream="a:1"}`: 1,
			`wssgate_connection_duration_seconds_bucket{le="1"}`:                            1, // le is inclusive
			`wssgate_connection_duration_seconds_sum`:                                       1,
			`wssgate_connection_duration_seconds_count`:                                     1,
			`wssgate_node_dial_errors_total{upstream="b:2"}`:                                0, // series start at 0
			`wssgate_node_health_checks_total{result="unhealthy",upstream="b:2"}`:           0,
			`wssgate_messages_total{direction="to_node",upstream="a:1"}`:                    0,
			`wssgate_node_dial_seconds_bucket{le="+Inf",upstream="a:1"}`:                    0,
			`wssgate_connection_duration_seconds_bucket{le="+Inf"}`:                         1,
			`wssgate_connection_duration_seconds_bucket{le="86400"}`:                        1,
			`wssgate_node_dial_seconds_count{upstream="b:2"}`:                               0,
		},
	}, {
		name: "no close code",
		prepare: func(c *Counters) {
			c.connOpened("a:1")
			c.connClosed("a:1", wssproxy.ConnEnd{Duration: -time.Second, ClosedBy: "gateway", ClientCode: -1})
		},
		want: map[string]float64{
			`wssgate_connections_closed_total{closed_by="gateway",code="none",upstream="a:1"}`: 1,
			`wssgate_connection_duration_seconds_bucket{le="1"}`:                               1,
			`wssgate_connection_duration_seconds_sum`:                                          0, // clamped
		},
	}, {
		name: "traffic",
		prepare: func(c *Counters) {
			c.traffic("a:1", true, 1, 10)
			c.traffic("a:1", true, 2, 20)
			c.traffic("a:1", false, 4, 40)
			c.traffic("a:1", false, -1, -1) // ignored
		},
		want: map[string]float64{
			`wssgate_messages_total{direction="to_node",upstream="a:1"}`:   3,
			`wssgate_messages_total{direction="to_client",upstream="a:1"}`: 4,
			`wssgate_bytes_total{direction="to_node",upstream="a:1"}`:      30,
			`wssgate_bytes_total{direction="to_client",upstream="a:1"}`:    40,
			`wssgate_connections_open{upstream="a:1"}`:                     0,
		},
	}, {
		name: "dial",
		prepare: func(c *Counters) {
			c.nodeDial("a:1", time.Millisecond, nil)
			c.nodeDial("a:1", 30*time.Millisecond, nil)
			c.nodeDial("a:1", time.Minute, errors.New("refused"))
		},
		want: map[string]float64{
			`wssgate_node_dial_seconds_bucket{le="0.001",upstream="a:1"}`: 1,
			`wssgate_node_dial_seconds_bucket{le="0.025",upstream="a:1"}`: 1,
			`wssgate_node_dial_seconds_bucket{le="0.05",upstream="a:1"}`:  2,
			`wssgate_node_dial_seconds_bucket{le="10",upstream="a:1"}`:    2,
			`wssgate_node_dial_seconds_bucket{le="+Inf",upstream="a:1"}`:  3,
			`wssgate_node_dial_seconds_count{upstream="a:1"}`:             3,
			`wssgate_node_dial_seconds_sum{upstream="a:1"}`:               60.031,
			`wssgate_node_dial_errors_total{upstream="a:1"}`:              1,
		},
	}, {
		name: "health",
		prepare: func(c *Counters) {
			c.nodeHealth("a:1", healthErr(true))
			c.nodeHealth("a:1", healthErr(false))
			c.nodeHealth("b:2", healthErr(false))
			c.nodeHealth("b:2", healthErr(true))
		},
		want: map[string]float64{
			`wssgate_node_healthy{upstream="a:1"}`:                                0,
			`wssgate_node_healthy{upstream="b:2"}`:                                1,
			`wssgate_node_health_checks_total{result="healthy",upstream="a:1"}`:   1,
			`wssgate_node_health_checks_total{result="unhealthy",upstream="a:1"}`: 1,
		},
	}, {
		name: "refusals and denials",
		prepare: func(c *Counters) {
			c.refused(wssproxy.Refusal{Reason: wssproxy.RefusalRate, Status: 429, WebSocket: true})
			c.refused(wssproxy.Refusal{Reason: wssproxy.RefusalBodyTooLarge, Status: 413})
			c.deniedCall("subscriptions")
		},
		want: map[string]float64{
			`wssgate_handshakes_total{outcome="rate",upstream=""}`: 1,
			`wssgate_refusals_total{reason="rate"}`:                1,
			`wssgate_refusals_total{reason="body_too_large"}`:      1,
			`wssgate_denied_calls_total{reason="subscriptions"}`:   1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCounters()
			tt.prepare(c)
			p := scrape(t, c)
			got := make(map[string]float64)
			for k := range tt.want {
				v, ok := p.samples[k]
				if !ok {
					t.Errorf("no sample %s", k)
					continue
				}
				got[k] = v
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountersNodeHealthyUnknown(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	c.connOpened("a:1")
	p := scrape(t, c)
	if _, ok := p.types["wssgate_node_healthy"]; ok {
		t.Error("wssgate_node_healthy exported before any health check")
	}
}

func TestCountersHistograms(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	for i := range 200 {
		d := time.Duration(i*i) * time.Millisecond
		c.nodeDial("a:1", d, nil)
		c.nodeDial("b:2", d/3, nil)
		c.connOpened("a:1")
		c.connClosed("a:1", wssproxy.ConnEnd{Duration: time.Duration(i*i*i) * time.Second, ClosedBy: "client", ClientCode: 1000})
	}
	p := scrape(t, c)
	// scrape checked buckets are cumulative and end in +Inf == _count; also
	// check the totals.
	for _, s := range []string{
		`wssgate_node_dial_seconds_count{upstream="a:1"}`,
		`wssgate_node_dial_seconds_bucket{le="+Inf",upstream="b:2"}`,
		`wssgate_connection_duration_seconds_count`,
	} {
		if got := p.samples[s]; got != 200 {
			t.Errorf("%s = %v, want 200", s, got)
		}
	}
	var sum float64
	for i := range 200 {
		sum += float64(i * i * i)
	}
	if got := p.samples[`wssgate_connection_duration_seconds_sum`]; got != sum {
		t.Errorf("duration sum = %v, want %v", got, sum)
	}
	if got := p.samples[`wssgate_connection_duration_seconds_bucket{le="86400"}`]; got != 45 { // 44³ < 86400 < 45³
		t.Errorf("duration le=86400 = %v, want 45", got)
	}
}

func TestCountersEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, upstream, want, text string }{
		{"plain", "node:9944", "node:9944", `{upstream="node:9944"}`},
		{"backslash", `a\b`, `a\b`, `{upstream="a\\b"}`},
		{"quote", `a"b`, `a"b`, `{upstream="a\"b"}`},
		{"newline", "a\nb", "a\nb", `{upstream="a\nb"}`},
		{"all", "\\\"\n", "\\\"\n", `{upstream="\\\"\n"}`},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb", `{upstream="a` + "\uFFFD" + `b"}`},
		{"unicode", "nœud", "nœud", `{upstream="nœud"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCounters()
			c.connOpened(tt.upstream)
			var buf bytes.Buffer
			if err := c.WritePrometheus(&buf); err != nil {
				t.Fatal(err)
			}
			if line := "wssgate_connections_open" + tt.text + " 1\n"; !strings.Contains(buf.String(), line) {
				t.Errorf("output lacks %q:\n%s", line, buf.String())
			}
			p := parsePrometheus(t, buf.String())
			key := "wssgate_connections_open{upstream=" + strconv.Quote(tt.want) + "}"
			if got, ok := p.samples[key]; !ok || got != 1 {
				t.Errorf("parsed %s = %v, %v; want 1", key, got, ok)
			}
		})
	}
}

// FuzzCountersLabel checks that any label value comes back from the text
// format unchanged, invalid UTF-8 aside.
func FuzzCountersLabel(f *testing.F) {
	for _, s := range []string{"", "node:9944", `\"\n`, "a\nb\"", "\xff\x00}", "{x=\"y\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, up string) {
		c := NewCounters()
		c.traffic(up, true, 1, 2)
		c.deniedCall(up)
		p := scrape(t, c)
		want := strconv.Quote(strings.ToValidUTF8(up, "\uFFFD"))
		for _, key := range []string{
			"wssgate_bytes_total{direction=\"to_node\",upstream=" + want + "}",
			"wssgate_denied_calls_total{reason=" + want + "}",
		} {
			if _, ok := p.samples[key]; !ok {
				t.Errorf("no sample %s in %v", key, slices.Sorted(maps.Keys(p.samples)))
			}
		}
	})
}

func TestCountersOverflow(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	c.MaxSeries = 3
	c.connOpened("a:1")
	// A hostile client picks a fresh application close code each time.
	for code := 3000; code < 5000; code++ {
		c.connClosed("a:1", wssproxy.ConnEnd{ClosedBy: "client", ClientCode: code})
	}
	for i := range 10 {
		c.deniedCall(fmt.Sprint("r", i))
		c.connOpened(fmt.Sprint("up", i))
	}
	for i := range 10 {
		c.connClosed(fmt.Sprint("up", i), wssproxy.ConnEnd{ClosedBy: "node", ClientCode: 1000})
	}
	s := c.Snapshot()
	want := map[string]map[string]map[string]int64{
		"a:1":         {"client": {"3000": 1, "3001": 1}},
		OverflowLabel: {OverflowLabel: {OverflowLabel: 1998 + 10}},
	}
	if diff := cmp.Diff(want, s.ConnectionsClosed); diff != "" {
		t.Errorf("ConnectionsClosed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"r0": 1, "r1": 1, OverflowLabel: 8}, s.Denied); diff != "" {
		t.Errorf("Denied (-want +got):\n%s", diff)
	}
	// Opens and closes of upstreams beyond the cap meet in "other".
	wantOpen := map[string]int64{"a:1": 1 - 2000, "up0": 0, OverflowLabel: 0}
	if diff := cmp.Diff(wantOpen, s.ConnectionsOpen); diff != "" {
		t.Errorf("ConnectionsOpen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"a:1": 1, "up0": 1, OverflowLabel: 9}, s.Connections); diff != "" {
		t.Errorf("Connections (-want +got):\n%s", diff)
	}
	p := scrape(t, c)
	if got := p.samples[`wssgate_connections_closed_total{closed_by="other",code="other",upstream="other"}`]; got != 2008 {
		t.Errorf("overflow series = %v, want 2008", got)
	}
}

func TestCountersZeroValue(t *testing.T) {
	t.Parallel()
	var c Counters // MaxSeries 0: DefaultMaxSeries
	for code := 3000; code < 5000; code++ {
		c.connClosed("a:1", wssproxy.ConnEnd{ClosedBy: "client", ClientCode: code})
	}
	s := c.Snapshot()
	byCode := s.ConnectionsClosed["a:1"]["client"]
	if len(byCode) != DefaultMaxSeries-1 || byCode["3998"] != 1 || byCode["3999"] != 0 {
		t.Errorf("kept %d codes, last %v, want %d", len(byCode), byCode["3998"], DefaultMaxSeries-1)
	}
	if got := s.ConnectionsClosed[OverflowLabel][OverflowLabel][OverflowLabel]; got != 2000-(DefaultMaxSeries-1) {
		t.Errorf("overflow = %d, want %d", got, 2000-(DefaultMaxSeries-1))
	}
}

func TestCountersSnapshot(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	countersScenario(c)
	dial := HistogramSnapshot{Count: 2, Sum: 5.004}
	for _, b := range nodeDialBounds {
		n := int64(0)
		switch {
		case b >= 5:
			n = 2
		case b >= 0.004:
			n = 1
		}
		dial.Buckets = append(dial.Buckets, HistogramBucket{UpperBound: b, Count: n})
	}
	dur := HistogramSnapshot{Count: 1, Sum: 90.5}
	for _, b := range connDurationBounds {
		dur.Buckets = append(dur.Buckets, HistogramBucket{UpperBound: b, Count: map[bool]int64{true: 1}[b >= 90.5]})
	}
	const up = "node:9944"
	want := Snapshot{
		ConnectionsOpen:    map[string]int64{up: 1},
		Connections:        map[string]int64{up: 2},
		ConnectionsClosed:  map[string]map[string]map[string]int64{up: {"client": {"1000": 1}}},
		ConnectionDuration: dur,
		Handshakes:         map[string]map[string]int64{"": {"origin": 1}, up: {"ok": 2}},
		Refusals:           map[string]int64{"origin": 1},
		Messages:           map[string]map[string]int64{up: {"to_node": 2, "to_client": 3}},
		Bytes:              map[string]map[string]int64{up: {"to_node": 100, "to_client": 5000}},
		NodeDial:           map[string]HistogramSnapshot{up: dial},
		NodeDialErrors:     map[string]int64{up: 1},
		NodeHealthy:        map[string]bool{up: true},
		NodeHealthChecks:   map[string]map[string]int64{up: {"healthy": 1, "unhealthy": 1}},
		Denied:             map[string]int64{"method": 2, "rate": 1},
		NodeGauges:         NodeGauges{map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}, 0},
		CacheLookups:       map[string]int64{"hit": 2, "miss": 1},
	}
	if diff := cmp.Diff(want, c.Snapshot(), cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	// Maps are never nil, so expvar shows {} rather than null.
	empty := NewCounters().Snapshot()
	b, err := json.Marshal(empty)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("null")) {
		t.Errorf("empty snapshot JSON has null: %s", b)
	}
}

func TestCountersPublish(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	name := fmt.Sprint("wssgate_test_counters_", countersPublished.Add(1)) // unique under -count
	c.Publish(name)
	countersScenario(c) // after Publish: the var is live
	v := expvar.Get(name)
	if v == nil {
		t.Fatalf("expvar.Get(%q) = nil", name)
	}
	var got Snapshot
	if err := json.Unmarshal([]byte(v.String()), &got); err != nil {
		t.Fatalf("expvar JSON: %v\n%s", err, v.String())
	}
	if diff := cmp.Diff(c.Snapshot(), got); diff != "" {
		t.Errorf("expvar snapshot (-want +got):\n%s", diff)
	}
	defer func() {
		if recover() == nil {
			t.Error("second Publish with the same name did not panic")
		}
	}()
	NewCounters().Publish(name)
}

var countersPublished atomic.Int64

func TestCountersServeHTTP(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	countersScenario(c)
	tests := []struct {
		method   string
		code     int
		wantBody string
	}{
		{http.MethodGet, http.StatusOK, countersGolden},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "metrics: /metrics needs GET or HEAD\n"},
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.code {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.code)
			}
			if diff := cmp.Diff(tt.wantBody, body.String()); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if tt.code == http.StatusOK {
				if ct := resp.Header.Get("Content-Type"); ct != promContentType {
					t.Errorf("Content-Type = %q", ct)
				}
				if resp.ContentLength != int64(len(countersGolden)) {
					t.Errorf("Content-Length = %d, want %d", resp.ContentLength, len(countersGolden))
				}
			}
		})
	}
}

func TestCountersWriteError(t *testing.T) {
	t.Parallel()
	want := errors.New("disk full")
	if err := NewCounters().WritePrometheus(errWriter{want}); !errors.Is(err, want) {
		t.Errorf("WritePrometheus = %v, want %v", err, want)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// TestCountersConcurrent records from many goroutines while others scrape,
// then checks exact totals. Run it with -race.
func TestCountersConcurrent(t *testing.T) {
	t.Parallel()
	const goroutines, rounds = 8, 500
	c := NewCounters()
	ups := []string{"a:1", "b:2"}
	stop := make(chan struct{})
	var scrapers sync.WaitGroup
	for range 2 {
		scrapers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.WritePrometheus(new(bytes.Buffer))
				c.Snapshot()
			}
		})
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		reason := fmt.Sprint("reason", g) // new series while others read
		wg.Go(func() {
			for i := range rounds {
				up := ups[i%2]
				c.connOpened(up)
				c.traffic(up, true, 1, 10)
				c.traffic(up, false, 2, 20)
				c.nodeDial(up, time.Millisecond, map[bool]error{true: errors.New("x")}[i%4 < 2])
				c.nodeHealth(up, healthErr(i%3 == 0))
				c.refused(wssproxy.Refusal{Reason: wssproxy.RefusalRate, Status: 429})
				c.deniedCall(reason)
				c.connClosed(up, wssproxy.ConnEnd{Duration: 2 * time.Second, ClosedBy: "client", ClientCode: 1000 + i%2})
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapers.Wait()

	const perUp = goroutines * rounds / 2
	s := c.Snapshot()
	byUp := func(v int64) map[string]int64 { return map[string]int64{"a:1": v, "b:2": v} }
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"open", s.ConnectionsOpen, byUp(0)},
		{"total", s.Connections, byUp(perUp)},
		{"dial errors", s.NodeDialErrors, byUp(perUp / 2)},
		{"refusals", s.Refusals, map[string]int64{wssproxy.RefusalRate: goroutines * rounds}},
		{"handshakes", s.Handshakes, map[string]map[string]int64{"a:1": {"ok": perUp}, "b:2": {"ok": perUp}}},
		{"messages", s.Messages["a:1"], map[string]int64{"to_node": perUp, "to_client": 2 * perUp}},
		{"bytes", s.Bytes["b:2"], map[string]int64{"to_node": 10 * perUp, "to_client": 20 * perUp}},
		{"closed", s.ConnectionsClosed, map[string]map[string]map[string]int64{
			"a:1": {"client": {"1000": perUp}}, "b:2": {"client": {"1001": perUp}},
		}},
		{"duration count", s.ConnectionDuration.Count, int64(goroutines * rounds)},
		{"duration sum", s.ConnectionDuration.Sum, float64(2 * goroutines * rounds)},
		{"dial count", s.NodeDial["a:1"].Count, int64(perUp)},
		{"denied", len(s.Denied), goroutines},
	}
	for _, ck := range checks {
		if diff := cmp.Diff(ck.want, ck.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ck.name, diff)
		}
	}
	hc := s.NodeHealthChecks["a:1"]
	if got := hc["healthy"] + hc["unhealthy"]; got != perUp {
		t.Errorf("health checks = %d, want %d", got, perUp)
	}
}

// TestCountersAllocs checks that recording on a label set seen before does
// not allocate. Not parallel: AllocsPerRun counts every goroutine's mallocs.
func TestCountersAllocs(t *testing.T) {
	h := NewCounters().Hooks()
	end := wssproxy.ConnEnd{Duration: time.Second, ClosedBy: "client", ClientCode: 4321}
	dialErr := errors.New("refused")
	refusal := wssproxy.Refusal{Reason: wssproxy.RefusalRate, Status: 429, WebSocket: true}
	calls := map[string]func(){
		"Refused":    func() { h.Refused(refusal) },
		"Denied":     func() { h.Denied("method") },
		"Cache":      func() { h.Cache("system_chain", true) },
		"ConnOpened": func() { h.ConnOpened("a:1") },
		"ConnClosed": func() { h.ConnClosed("a:1", end) },
		"Traffic":    func() { h.Traffic("a:1", true, 1, 100) },
		"NodeDial":   func() { h.NodeDial("a:1", time.Millisecond, dialErr) },
		"NodeHealth": func() { h.NodeHealth("a:1", dialErr) },
	}
	for name, f := range calls {
		f() // create the series
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", name, n)
		}
	}
}

func BenchmarkCountersTraffic(b *testing.B) {
	c := NewCounters()
	ups := []string{"a:1", "b:2", "c:3", "d:4"}
	for _, up := range ups {
		c.connOpened(up)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.traffic(ups[i%len(ups)], i%2 == 0, 1, 512)
			i++
		}
	})
}

func BenchmarkCountersConnOpened(b *testing.B) {
	c := NewCounters()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.connOpened("a:1")
		}
	})
}

func BenchmarkCountersWritePrometheus(b *testing.B) {
	c := NewCounters()
	for i := range 10 {
		up := fmt.Sprint("node", i, ":9944")
		countersScenario(c)
		c.connOpened(up)
		c.nodeHealth(up, healthErr(true))
		c.nodeDial(up, time.Millisecond, nil)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		c.WritePrometheus(&buf)
	}
	b.SetBytes(int64(buf.Len()))
}

// promText is a parsed Prometheus text exposition. Sample keys are the
// metric name and its labels sorted by name, values quoted with
// strconv.Quote: name{a="x",b="y"}.
type promText struct {
	help, types map[string]string
	samples     map[string]float64
}

func scrape(t *testing.T, c *Counters) *promText {
	t.Helper()
	var buf bytes.Buffer
	if err := c.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	return parsePrometheus(t, buf.String())
}

// parsePrometheus parses the subset of the text format 0.0.4 that Counters
// writes, failing t on anything else. It checks that each family has one
// HELP and one TYPE line before its samples, that samples of a family are
// contiguous, and that histogram buckets are cumulative and end in +Inf
// equal to _count, with a _sum.
func parsePrometheus(t *testing.T, text string) *promText {
	t.Helper()
	p := &promText{help: map[string]string{}, types: map[string]string{}, samples: map[string]float64{}}
	var family string // of the previous line
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, val, _ := strings.Cut(rest, " ")
			m := map[string]map[string]string{"HELP": p.help, "TYPE": p.types}[kind]
			if m == nil {
				t.Fatalf("line %d: unknown comment %q", n, line)
			}
			if _, dup := m[name]; dup {
				t.Fatalf("line %d: second %s for %s", n, kind, name)
			}
			if kind == "TYPE" && p.help[name] == "" {
				t.Fatalf("line %d: TYPE before HELP for %s", n, name)
			}
			m[name], family = val, name
			continue
		}
		name, labels, value := parsePromSample(t, n, line)
		fam := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && p.types[base] == "histogram" {
				fam = base
			}
		}
		if fam != family || p.types[fam] == "" {
			t.Fatalf("line %d: sample of %s outside its family (after %s)", n, fam, family)
		}
		key := promKey(name, labels)
		if _, dup := p.samples[key]; dup {
			t.Fatalf("line %d: duplicate sample %s", n, key)
		}
		p.samples[key] = value
	}
	checkHistograms(t, p)
	return p
}

func parsePromSample(t *testing.T, n int, line string) (name string, labels map[string]string, value float64) {
	t.Helper()
	fail := func(why string) { t.Fatalf("line %d: %s: %q", n, why, line) }
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		fail("no name")
	}
	name, rest := line[:i], line[i:]
	labels = map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for rest != "" && rest[0] != '}' {
			label, after, ok := strings.Cut(rest, `="`)
			if !ok {
				fail("bad label")
			}
			var val strings.Builder
			j := 0
			for ; j < len(after) && after[j] != '"'; j++ {
				if after[j] == '\\' && j+1 < len(after) {
					j++
					switch after[j] {
					case '\\', '"':
						val.WriteByte(after[j])
					case 'n':
						val.WriteByte('\n')
					default:
						fail("bad escape")
					}
					continue
				}
				val.WriteByte(after[j])
			}
			if j == len(after) {
				fail("unterminated label value")
			}
			if _, dup := labels[label]; dup {
				fail("duplicate label")
			}
			labels[label] = val.String()
			rest = strings.TrimPrefix(after[j+1:], ",")
		}
		if rest == "" {
			fail("unterminated labels")
		}
		rest = rest[1:]
	}
	v, ok := strings.CutPrefix(rest, " ")
	value, err := strconv.ParseFloat(v, 64)
	if !ok || err != nil {
		fail("bad value")
	}
	return name, labels, value
}

func promKey(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// checkHistograms checks each histogram series: buckets cumulative, +Inf
// present and equal to _count, _sum present.
func checkHistograms(t *testing.T, p *promText) {
	t.Helper()
	type bucket struct{ le, n float64 }
	buckets := map[string][]bucket{} // by promKey of the _count series
	for key, v := range p.samples {
		name, _, _ := strings.Cut(key, "{")
		base, ok := strings.CutSuffix(name, "_bucket")
		if !ok || p.types[base] != "histogram" {
			continue
		}
		_, labels, _ := parsePromSampleKey(key)
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			t.Fatalf("%s: bad le", key)
		}
		delete(labels, "le")
		ck := promKey(base+"_count", labels)
		buckets[ck] = append(buckets[ck], bucket{le, v})
	}
	for ck, bs := range buckets {
		slices.SortFunc(bs, func(a, b bucket) int { return int(math.Copysign(1, a.le-b.le)) })
		for i := 1; i < len(bs); i++ {
			if bs[i].n < bs[i-1].n {
				t.Errorf("%s: bucket le=%v has %v < %v", ck, bs[i].le, bs[i].n, bs[i-1].n)
			}
		}
		last := bs[len(bs)-1]
		count, ok := p.samples[ck]
		if !ok || !math.IsInf(last.le, 1) || last.n != count {
			t.Errorf("%s = %v (present %v); last bucket %+v, want +Inf with the count", ck, count, ok, last)
		}
		if _, ok := p.samples[strings.Replace(ck, "_count", "_sum", 1)]; !ok {
			t.Errorf("%s: no _sum", ck)
		}
	}
}

// parsePromSampleKey parses a promKey back, for checkHistograms.
func parsePromSampleKey(key string) (string, map[string]string, bool) {
	name, rest, ok := strings.Cut(key, "{")
	labels := map[string]string{}
	if !ok {
		return name, labels, true
	}
	rest = strings.TrimSuffix(rest, "}")
	for rest != "" {
		k, after, _ := strings.Cut(rest, "=")
		q, err := strconv.QuotedPrefix(after)
		if err != nil {
			return "", nil, false
		}
		labels[k], _ = strconv.Unquote(q)
		rest = strings.TrimPrefix(after[len(q):], ",")
	}
	return name, labels, true
}

// healthErr is the error a health check reports: nil if healthy.
func healthErr(healthy bool) error {
	if healthy {
		return nil
	}
	return errors.New("unhealthy")
}
