package operator

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/wssgate/wssgate/metrics"
	"github.com/wssgate/wssgate/ratelimit"
)

var (
	//go:embed pages/landing.html
	landingHTML string
	//go:embed pages/dashboard.html
	dashboardHTML []byte

	landingTmpl = template.Must(template.New("landing").Parse(landingHTML))
)

// publicHandler serves the public port: a browser's GET / (Accept:
// text/html, no upgrade) gets the landing page, under the same request
// limit as everything else; all other requests, JSON-RPC GETs such as
// /health among them, go to the node.
func (s *server) publicHandler() http.Handler {
	landing := http.HandlerFunc(s.landing)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isBrowserPage(r) {
			ratelimit.Handler(landing, s.gw.current().key, &s.gw.request).ServeHTTP(w, r)
			return
		}
		s.gw.ServeHTTP(w, r)
	})
}

// isBrowserPage reports whether r is a browser navigating to the root.
func isBrowserPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/" &&
		r.Header.Get("Upgrade") == "" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// landingData is what the landing page shows: nothing about clients.
type landingData struct {
	Name, WSS, Apps string
	SelfSigned      bool
	SHA256          string
	Issuer          string
	NotAfter        string
	Nodes           []nodeInfo
}

func (s *server) landing(w http.ResponseWriter, r *http.Request) {
	wss := "wss://" + r.Host
	d := landingData{Name: s.prog.name(), WSS: wss, Apps: AppsURL(wss)}
	for i, n := range s.nodes(s.metrics.Snapshot()) {
		n.Upstream = fmt.Sprintf("node %d", i+1) // internal addresses stay private
		n.Conns, n.Reason, n.DialMs, n.DialErrors, n.State = 0, "", 0, 0, ""
		d.Nodes = append(d.Nodes, n)
	}
	if r.TLS != nil {
		if c, err := s.certs.src.GetCertificate(hello(r.TLS.ServerName)); err == nil {
			info := leafInfo("", c, nil)
			d.SHA256, d.Issuer, d.NotAfter = info.SHA256, info.Issuer, info.NotAfter.UTC().Format("2006-01-02")
			d.SelfSigned = s.certs.selfSigned != nil && s.certs.selfSigned.Certificate() == c
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	landingTmpl.Execute(w, d)
}

// nodeInfo is one node on the pages.
type nodeInfo struct {
	Upstream       string  `json:"upstream"`
	Healthy        bool    `json:"healthy"`
	State          string  `json:"state"` // wssproxy.State*
	BestBlock      uint64  `json:"bestBlock"`
	FinalizedBlock uint64  `json:"finalizedBlock"`
	Lag            uint64  `json:"lag"`
	Conns          int64   `json:"conns"`
	Reason         string  `json:"reason,omitempty"`
	DialMs         float64 `json:"dialMs"` // mean dial latency
	DialErrors     int64   `json:"dialErrors"`
}

func (s *server) nodes(snap metrics.Snapshot) []nodeInfo {
	ns := s.gw.current().proxy.Nodes()
	out := make([]nodeInfo, len(ns))
	for i, n := range ns {
		host := n.Upstream
		if _, h, ok := strings.Cut(host, "://"); ok {
			host = strings.TrimRight(h, "/")
		}
		ni := nodeInfo{Upstream: n.Upstream, Healthy: n.Healthy, State: n.State, BestBlock: n.BestBlock,
			FinalizedBlock: n.FinalizedBlock, Lag: n.Lag, Conns: n.Conns, Reason: n.Reason, DialErrors: snap.NodeDialErrors[host]}
		if h, ok := snap.NodeDial[host]; ok && h.Count > 0 {
			ni.DialMs = h.Sum / float64(h.Count) * 1000
		}
		out[i] = ni
	}
	return out
}

// Status is the dashboard's JSON (GET /api/status on the admin listener).
type Status struct {
	Name       string           `json:"name"`
	Version    string           `json:"version"`
	Now        time.Time        `json:"now"`
	Started    time.Time        `json:"started"`
	Ready      bool             `json:"ready"`
	WSS        string           `json:"wss"`
	Open       int64            `json:"open"`       // sum of wssgate_connections_open
	Handshakes int64            `json:"handshakes"` // wssgate_handshakes_total{outcome="ok"}
	Refusals   map[string]int64 `json:"refusals"`   // wssgate_refusals_total by reason
	Nodes      []nodeInfo       `json:"nodes"`
	Certs      []CertInfo       `json:"certs"`
	History    []Point          `json:"history"`
	Interval   float64          `json:"intervalSeconds"`
}

func (s *server) status() Status {
	now := time.Now()
	snap := s.metrics.Snapshot()
	ok, ref := totals(snap)
	var open int64
	for _, v := range snap.ConnectionsOpen {
		open += v
	}
	var obtained map[string]bool
	if p := s.obtained.Load(); p != nil {
		obtained = *p
	}
	return Status{Name: s.prog.name(), Version: Version(), Now: now, Started: s.started,
		Ready: s.gw.current().proxy.Ready(), WSS: "wss://" + s.publicHost(), Open: open, Handshakes: ok,
		Refusals: ref, Nodes: s.nodes(snap), Certs: s.certs.info(obtained), History: s.history.snapshot(now),
		Interval: sampleInterval.Seconds()}
}

// adminHandler serves the private admin listener.
func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
		w.Write(dashboardHTML)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(s.status())
	})
	mux.Handle("GET /metrics", s.metrics)
	mux.Handle("GET /ready", s.gw.readyHandler())
	mux.HandleFunc("GET /debug/vars", func(w http.ResponseWriter, r *http.Request) {
		// expvar-style JSON without the process-wide expvar registry (Run
		// may be called more than once in a process).
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"wssgate": s.metrics.Snapshot()})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index) // CPU and heap profiles, for the benchmarks
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}
