package wssproxy

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// NodeStatus is one node's state as the pool sees it.
type NodeStatus struct {
	Upstream string `json:"upstream"`
	Healthy  bool   `json:"healthy"`
	// State is StateHealthy or why the node is not (a State* constant).
	State string `json:"state"`
	// Reason says why the node is unhealthy, e.g. "stalled at #1234 for
	// 3m"; empty while it is healthy.
	Reason         string `json:"reason,omitempty"`
	BestBlock      uint64 `json:"bestBlock"`
	FinalizedBlock uint64 `json:"finalizedBlock"`
	// SecondsSinceHead is how long ago the node's best block last
	// changed, as far as the gateway saw; -1 before its first head.
	SecondsSinceHead float64 `json:"secondsSinceHead"`
	// Lag is how many blocks the node trails the pool's best node.
	Lag     uint64 `json:"lag"`
	Peers   int    `json:"peers"`
	Syncing bool   `json:"syncing"`
	// Heads is "subscription" while the gateway follows the node's heads
	// over its own WebSocket, or "polling" while it asks at each check.
	Heads string `json:"heads"`
	// UnsafeMethods says whether the node serves unsafe methods to the
	// gateway: UnsafeServed, UnsafeRefused or UnsafeUnknown. A node that
	// serves them trusts anything that reaches it through a gateway whose
	// Policy lets them pass; run it with --rpc-methods safe.
	UnsafeMethods string `json:"unsafeMethods"`
	// Conns counts the gateway's WebSocket connections to the node,
	// WarmConns among them: those dialed ahead (Options.NodeWarmConns)
	// that no client has taken yet.
	Conns     int64 `json:"conns"`
	WarmConns int   `json:"warmConns"`
}

// Nodes reports the state of each node of the pool.
func (p *Proxy) Nodes() []NodeStatus {
	out := make([]NodeStatus, len(p.backends))
	for i, b := range p.backends {
		out[i] = p.nodeStatus(b)
	}
	return out
}

// nodeStatus reports b's state now.
func (p *Proxy) nodeStatus(b *backend) NodeStatus {
	var top uint64
	for _, o := range p.backends {
		o.health.mu.Lock()
		top = max(top, o.health.best)
		o.health.mu.Unlock()
	}
	now := p.opts.now()
	h := &b.health
	h.mu.Lock()
	defer h.mu.Unlock()
	s := NodeStatus{
		Upstream:         b.url.Redacted(),
		Healthy:          b.healthy.Load(),
		State:            h.state,
		Reason:           h.reason,
		BestBlock:        h.best,
		FinalizedBlock:   h.finalized,
		SecondsSinceHead: -1,
		Lag:              top - h.best,
		Peers:            h.peers,
		Syncing:          h.syncing,
		Heads:            "polling",
		UnsafeMethods:    h.unsafe,
		Conns:            b.conns.Load(),
		WarmConns:        p.warm.count(b),
	}
	if s.State == "" {
		s.State = StateHealthy // not checked yet
	}
	if s.UnsafeMethods == "" {
		s.UnsafeMethods = UnsafeUnknown
	}
	if h.subscribed {
		s.Heads = "subscription"
	}
	if !h.headAt.IsZero() {
		s.SecondsSinceHead = math.Round(now.Sub(h.headAt).Seconds()*1000) / 1000
	}
	return s
}

// Ready reports whether at least one node is healthy and the proxy is not
// shutting down.
func (p *Proxy) Ready() bool {
	select {
	case <-p.draining:
		return false
	default:
	}
	return p.anyHealthy()
}

// serving reports whether the proxy takes new connections: not shutting
// down, and a node is healthy or StrictHealth is off.
func (p *Proxy) serving() bool {
	select {
	case <-p.draining:
		return false
	default:
	}
	return !p.opts.StrictHealth || p.anyHealthy()
}

// ReadyHandler serves the gateway's own readiness: 200 while [Proxy.Ready],
// else 503, with the nodes' states as JSON:
//
//	{"ready":false,"serving":true,"nodes":[{"upstream":"ws://10.0.0.5:9944","healthy":false,"state":"stalled","reason":"stalled at #1234 for 3m",...}]}
//
// serving says whether the gateway still takes new connections: while
// every node is unhealthy it does, unless Options.StrictHealth. Load
// balancers poll it; the node's own /health and /health/readiness pass
// through the proxy as any other request.
func (p *Proxy) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ready := p.Ready()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(struct {
			Ready   bool         `json:"ready"`
			Serving bool         `json:"serving"`
			Nodes   []NodeStatus `json:"nodes"`
		}{ready, p.serving(), p.Nodes()})
	})
}

// refuseUnhealthy refuses r with 503 and Retry-After if StrictHealth is on
// and every node is unhealthy, and reports whether it did.
func (p *Proxy) refuseUnhealthy(w http.ResponseWriter, r *http.Request) bool {
	if !p.opts.StrictHealth || p.anyHealthy() {
		return false
	}
	retry := max(time.Second, p.opts.HealthInterval).Round(time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	p.refuse(w, r, http.StatusServiceUnavailable, RefusalUnhealthy, "every node is unhealthy: "+p.poolReason())
	return true
}
