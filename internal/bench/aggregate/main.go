// Command aggregate turns the results.jsonl that compare.sh writes into a
// Markdown table of per-target medians and their ratio to a baseline:
//
//	go run ./internal/bench/aggregate -baseline direct-wss results.jsonl
//
// Each input line is {"round":N,"target":"...","scenario":"...","exit":N,
// "result":{...loadtest -json...}}. A cell marked "!" had a run that failed
// or counted errors; its median is over the runs that produced a value.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

type line struct {
	Round    int            `json:"round"`
	Target   string         `json:"target"`
	Scenario string         `json:"scenario"`
	Exit     int            `json:"exit"`
	Result   map[string]any `json:"result"`
}

// metric is one row of the table.
type metric struct {
	label  string
	path   string // dotted path into the result
	scale  float64
	format string
	higher bool // higher is better
}

// metrics maps a scenario (or, for idleN, its prefix) to its rows.
func metrics(scenario string) []metric {
	switch {
	case scenario == "rtt1":
		return []metric{
			{"rtt 1 conn 100 B, p50 µs", "latency_us.p50", 1, "%.0f", false},
			{"rtt 1 conn 100 B, p99 µs", "latency_us.p99", 1, "%.0f", false},
		}
	case scenario == "rtt32":
		return []metric{
			{"rtt 32 conns 100 B, msgs/s", "msgs_per_s", 1, "%.0f", true},
			{"rtt 32 conns 100 B, p99 ms", "latency_us.p99", 1e-3, "%.2f", false},
		}
	case scenario == "pipe100":
		return []metric{{"pipe 100 B window 64, msgs/s", "msgs_per_s", 1, "%.0f", true}}
	case scenario == "pipe64k":
		return []metric{{"pipe 64 KiB window 64, MB/s", "mb_per_s", 1, "%.1f", true}}
	case scenario == "fanout100":
		return []metric{{"fanout 100 B, msgs/s received", "msgs_per_s", 1, "%.0f", true}}
	case scenario == "handshake":
		return []metric{
			{"handshakes/s (full TLS, client offers X25519MLKEM768)", "conns_per_s", 1, "%.0f", true},
			{"handshake p50 ms", "latency_us.p50", 1e-3, "%.2f", false},
		}
	case scenario == "handshake-x25519":
		return []metric{
			{"handshakes/s (full TLS, classic X25519 only)", "conns_per_s", 1, "%.0f", true},
			{"handshake p50 ms, X25519", "latency_us.p50", 1e-3, "%.2f", false},
		}
	case strings.HasPrefix(scenario, "idle"):
		return []metric{{"idle " + strings.TrimPrefix(scenario, "idle") + " conns, KiB/conn", "idle.kib_per_conn", 1, "%.1f", false}}
	}
	return []metric{{scenario + ", msgs/s", "msgs_per_s", 1, "%.0f", true}}
}

func main() {
	baseline := flag.String("baseline", "direct-wss", "target the ratios are relative to")
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "aggregate:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	if err := aggregate(in, os.Stdout, *baseline); err != nil {
		fmt.Fprintln(os.Stderr, "aggregate:", err)
		os.Exit(1)
	}
}

// cell collects one target's values for one metric.
type cell struct {
	values []float64
	bad    int // runs that failed or counted errors
}

func aggregate(in io.Reader, out io.Writer, baseline string) error {
	var targets, scenarios []string
	cells := map[[2]string]*cell{} // {row label, target}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("bad line %q: %w", sc.Text(), err)
		}
		if !slices.Contains(targets, l.Target) {
			targets = append(targets, l.Target)
		}
		if !slices.Contains(scenarios, l.Scenario) {
			scenarios = append(scenarios, l.Scenario)
		}
		failed := l.Exit != 0 || l.Result == nil || number(l.Result, "errors") > 0
		for _, m := range metrics(l.Scenario) {
			k := [2]string{m.label, l.Target}
			if cells[k] == nil {
				cells[k] = &cell{}
			}
			if failed {
				cells[k].bad++
			}
			if v := number(l.Result, m.path); l.Result != nil && !math.IsNaN(v) {
				cells[k].values = append(cells[k].values, v*m.scale)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("no results")
	}
	writeTable(out, baseline, targets, scenarios, cells)
	return nil
}

func writeTable(out io.Writer, baseline string, targets, scenarios []string, cells map[[2]string]*cell) {
	fmt.Fprintf(out, "| metric (median of runs; ×%s) |", baseline)
	for _, t := range targets {
		fmt.Fprintf(out, " %s |", t)
	}
	fmt.Fprint(out, "\n|---|", strings.Repeat("---:|", len(targets)), "\n")
	bad := false
	for _, s := range scenarios {
		for _, m := range metrics(s) {
			fmt.Fprintf(out, "| %s %s |", m.label, arrow(m.higher))
			base, hasBase := median(cells[[2]string{m.label, baseline}])
			for _, t := range targets {
				c := cells[[2]string{m.label, t}]
				v, ok := median(c)
				switch {
				case !ok:
					fmt.Fprint(out, " – |")
				case hasBase && base != 0 && t != baseline:
					fmt.Fprintf(out, " "+m.format+" (×%.2f)%s |", v, v/base, mark(c))
				default:
					fmt.Fprintf(out, " "+m.format+"%s |", v, mark(c))
				}
				bad = bad || (c != nil && c.bad > 0)
			}
			fmt.Fprintln(out)
		}
	}
	if bad {
		fmt.Fprintln(out, "\n! = at least one run of that cell failed or counted errors (see the logs).")
	}
}

func arrow(higher bool) string {
	if higher {
		return "(↑)"
	}
	return "(↓)"
}

func mark(c *cell) string {
	if c.bad > 0 {
		return fmt.Sprintf(" !%d", c.bad)
	}
	return ""
}

func median(c *cell) (float64, bool) {
	if c == nil || len(c.values) == 0 {
		return 0, false
	}
	v := slices.Clone(c.values)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2], true
	}
	return (v[n/2-1] + v[n/2]) / 2, true
}

// number returns the value at a dotted path, or NaN.
func number(m map[string]any, path string) float64 {
	var cur any = m
	for k := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return math.NaN()
		}
		cur = obj[k]
	}
	if f, ok := cur.(float64); ok {
		return f
	}
	return math.NaN()
}
