package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is what one run measured. Rates are over the measured window
// (warm-up excluded); MB is 10^6 bytes of WebSocket payload received.
type Result struct {
	Mode         string           `json:"mode"`
	URL          string           `json:"url"`
	Conns        int              `json:"conns"`
	Size         int              `json:"size"`
	Window       int              `json:"window,omitempty"`
	Rate         float64          `json:"rate,omitempty"`
	Seconds      float64          `json:"seconds"`
	Msgs         int64            `json:"msgs"`
	MsgsPerSec   float64          `json:"msgs_per_s"`
	Bytes        int64            `json:"bytes"`
	MBPerSec     float64          `json:"mb_per_s"`
	Latency      *Latency         `json:"latency_us,omitempty"`
	ConnsPerSec  float64          `json:"conns_per_s,omitempty"`
	Resumed      int64            `json:"resumed,omitempty"`
	TLS          string           `json:"tls,omitempty"` // handshake: version, key exchange, cipher
	Idle         *IdleStats       `json:"idle,omitempty"`
	Method       string           `json:"method,omitempty"`
	Errors       int64            `json:"errors"`
	ErrorKinds   map[string]int64 `json:"error_kinds,omitempty"` // by errorKind
	ErrorSamples []string         `json:"error_samples,omitempty"`
	Hint         string           `json:"hint,omitempty"`
}

// IdleStats is what idle mode measures. RSS figures are KiB summed over
// PIDs; KiBPerConn uses the larger of the two readings after opening.
type IdleStats struct {
	Opened       int     `json:"opened"`
	Failed       int     `json:"failed"`
	Dropped      int     `json:"dropped"`
	OpenSeconds  float64 `json:"open_seconds"`
	PIDs         []int   `json:"pids,omitempty"`
	RSSBeforeKiB int64   `json:"rss_before_kib,omitempty"`
	RSSOpenKiB   int64   `json:"rss_open_kib,omitempty"`
	RSSEndKiB    int64   `json:"rss_end_kib,omitempty"`
	KiBPerConn   float64 `json:"kib_per_conn,omitempty"`
}

func newResult(c *config) *Result {
	r := &Result{Mode: c.mode, URL: c.url, Conns: c.conns, Size: c.size, Method: c.method}
	switch c.mode {
	case "pipe":
		r.Window = c.window
	case "fanout":
		r.Rate = c.rate
	}
	return r
}

func (r *Result) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	row("mode", "%s", r.Mode)
	row("url", "%s", r.URL)
	row("conns", "%d", r.Conns)
	if r.Mode != "idle" && r.Mode != "fanout" {
		row("method", "%s", r.Method)
	}
	if r.Mode != "idle" && (r.Method == "bench_echo" || r.Mode == "fanout") {
		row("size", "%d B", r.Size)
	}
	if r.Window > 0 {
		row("window", "%d", r.Window)
	}
	if r.Mode == "fanout" {
		row("rate/conn", "%s", rateString(r.Rate))
	}
	if r.Idle != nil {
		r.Idle.rows(row)
	} else {
		r.rateRows(row)
	}
	row("errors", "%d", r.Errors)
	kinds := make([]string, 0, len(r.ErrorKinds))
	for k := range r.ErrorKinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		row("  "+k, "%d", r.ErrorKinds[k])
	}
	for _, e := range r.ErrorSamples {
		row("", "%s", e)
	}
	if r.Hint != "" {
		row("hint", "%s", r.Hint)
	}
	return tw.Flush()
}

func (r *Result) rateRows(row func(k, f string, a ...any)) {
	row("measured", "%.2f s", r.Seconds)
	if r.Mode == "handshake" {
		row("connections", "%d (%d resumed)", r.Msgs, r.Resumed)
		row("conns/s", "%.1f", r.ConnsPerSec)
		if r.TLS != "" {
			row("tls", "%s", r.TLS)
		}
	} else {
		row("msgs", "%d", r.Msgs)
		row("msgs/s", "%.1f", r.MsgsPerSec)
		row("MB/s", "%.2f", r.MBPerSec)
	}
	if l := r.Latency; l != nil {
		name := "latency"
		if r.Mode == "handshake" {
			name = "handshake"
		}
		row(name, "p50 %s  p99 %s  p99.9 %s  max %s  mean %s  (%d samples)",
			us(l.P50), us(l.P99), us(l.P999), us(l.Max), us(l.Mean), l.Samples)
	}
}

func (s *IdleStats) rows(row func(k, f string, a ...any)) {
	row("opened", "%d in %.2f s (%d failed)", s.Opened, s.OpenSeconds, s.Failed)
	row("dropped", "%d during the hold", s.Dropped)
	if len(s.PIDs) == 0 {
		return
	}
	pids := make([]string, len(s.PIDs))
	for i, p := range s.PIDs {
		pids[i] = fmt.Sprint(p)
	}
	row("pids", "%s", strings.Join(pids, ","))
	row("VmRSS", "before %d KiB, all open %d KiB, end of hold %d KiB", s.RSSBeforeKiB, s.RSSOpenKiB, s.RSSEndKiB)
	row("per conn", "%.1f KiB", s.KiBPerConn)
}

func us(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fms", v/1e3)
	}
	return fmt.Sprintf("%.0fµs", v)
}

func rateString(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g/s", r)
}
