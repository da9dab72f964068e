package metrics

import (
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ServeHTTP serves the metrics in the Prometheus text format to GET and
// HEAD requests, for a /metrics endpoint.
func (c *Counters) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "metrics: /metrics needs GET or HEAD", http.StatusMethodNotAllowed)
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
	p.family1("cache_lookups_total", "counter", "Shared mode's response cache lookups, by outcome (hit or miss).", "outcome", s.CacheLookups)
	p.nodeGauges(s.NodeGauges)
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
