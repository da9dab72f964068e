package wssproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one node of the pool.
type backend struct {
	url     *url.URL // ws:// or wss://
	httpURL *url.URL // http:// or https://
	host    string   // for logs and metrics

	conns   atomic.Int64 // open proxied WebSocket connections
	healthy atomic.Bool
	best    atomic.Uint64 // best block number at the last check

	mu      sync.Mutex
	lastErr string // why the last check failed, for the readiness page
}

func newBackend(u *url.URL) *backend {
	h := *u
	if h.Scheme == "wss" {
		h.Scheme = "https"
	} else {
		h.Scheme = "http"
	}
	b := &backend{url: u, httpURL: &h, host: u.Host}
	b.healthy.Store(true) // until a check says otherwise
	return b
}

// reserve takes one of the node's connection slots, if it has fewer than
// limit in use (limit 0: no cap). Undo it with conns.Add(-1).
func (b *backend) reserve(limit int) bool {
	for {
		n := b.conns.Load()
		if limit > 0 && n >= int64(limit) {
			return false
		}
		if b.conns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (b *backend) setHealth(ok bool, why string) (changed bool) {
	b.mu.Lock()
	b.lastErr = why
	b.mu.Unlock()
	return b.healthy.Swap(ok) != ok
}

// candidates orders the backends for a new connection: healthy ones by
// fewest connections (ties taken round robin), then the unhealthy ones as a
// last resort, since a health check may be stale.
func (p *Proxy) candidates() []*backend {
	n := len(p.backends)
	if n == 1 {
		return p.backends
	}
	start := int(p.rr.Add(1) % uint64(n))
	out := make([]*backend, 0, n)
	for i := range n {
		out = append(out, p.backends[(start+i)%n])
	}
	sort.SliceStable(out, func(i, j int) bool {
		hi, hj := out[i].healthy.Load(), out[j].healthy.Load()
		if hi != hj {
			return hi
		}
		return out[i].conns.Load() < out[j].conns.Load()
	})
	return out
}

// pick returns the backend for a plain HTTP request.
func (p *Proxy) pick() *backend { return p.candidates()[0] }

// healthLoop checks every node each HealthInterval until the proxy closes.
func (p *Proxy) healthLoop() {
	defer p.healthDone.Done()
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

// checkAll checks the nodes concurrently, then marks those whose best block
// lags the best of all by more than MaxBlockLag.
func (p *Proxy) checkAll() {
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
	var wg sync.WaitGroup
	for i, b := range p.backends {
		wg.Go(func() { errs[i] = p.check(ctx, b) })
	}
	wg.Wait()
	var top uint64
	for i, b := range p.backends {
		if errs[i] == nil {
			top = max(top, b.best.Load())
		}
	}
	for i, b := range p.backends {
		err := errs[i]
		if err == nil && top-b.best.Load() > p.opts.MaxBlockLag {
			err = fmt.Errorf("best block %d lags the pool's %d by more than %d", b.best.Load(), top, p.opts.MaxBlockLag)
		}
		p.recordHealth(b, err)
	}
}

func (p *Proxy) recordHealth(b *backend, err error) {
	why := ""
	if err != nil {
		why = err.Error()
	}
	p.metrics.NodeHealth(b.host, err)
	if b.setHealth(err == nil, why) {
		level, msg := slog.LevelInfo, "wssproxy: node healthy"
		if err != nil {
			level, msg = slog.LevelWarn, "wssproxy: node unhealthy"
		}
		p.log.LogAttrs(context.Background(), level, msg, slog.String("upstream", b.host), slog.String("reason", why))
	}
}

// healthQuery asks a node, in one batch, for its health and best header.
var healthQuery = []byte(`[{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]},` +
	`{"jsonrpc":"2.0","id":2,"method":"chain_getHeader","params":[]}]`)

// check asks one node whether it can serve: reachable, not syncing, with
// peers if it should have them; and records its best block.
func (p *Proxy) check(ctx context.Context, b *backend) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.httpURL.String(), bytes.NewReader(healthQuery))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.opts.UpstreamHeader {
		req.Header[k] = v
	}
	resp, err := p.dial.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %s", dialCause(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health query failed: %s", resp.Status)
	}
	var replies []struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &replies); err != nil {
		return errors.New("health query: reply is not a JSON-RPC batch")
	}
	var health struct {
		Peers           int  `json:"peers"`
		IsSyncing       bool `json:"isSyncing"`
		ShouldHavePeers bool `json:"shouldHavePeers"`
	}
	var header struct {
		Number string `json:"number"`
	}
	for _, r := range replies {
		switch r.ID {
		case 1:
			err = json.Unmarshal(r.Result, &health)
		case 2:
			err = json.Unmarshal(r.Result, &header)
		}
		if err != nil {
			return fmt.Errorf("health query: reply %d: %v", r.ID, err)
		}
	}
	best, err := strconv.ParseUint(header.Number, 0, 64)
	if err != nil {
		return fmt.Errorf("health query: best block number %q", header.Number)
	}
	b.best.Store(best)
	switch {
	case health.IsSyncing:
		return errors.New("node is syncing")
	case health.ShouldHavePeers && health.Peers == 0:
		return errors.New("node has no peers")
	}
	return nil
}

// NodeStatus is one node's state as the pool sees it.
type NodeStatus struct {
	Upstream  string `json:"upstream"`
	Healthy   bool   `json:"healthy"`
	BestBlock uint64 `json:"bestBlock"`
	Conns     int64  `json:"conns"`
	Reason    string `json:"reason,omitempty"`
}

// Nodes reports the state of each node of the pool.
func (p *Proxy) Nodes() []NodeStatus {
	out := make([]NodeStatus, len(p.backends))
	for i, b := range p.backends {
		b.mu.Lock()
		why := b.lastErr
		b.mu.Unlock()
		out[i] = NodeStatus{Upstream: b.url.Redacted(), Healthy: b.healthy.Load(), BestBlock: b.best.Load(), Conns: b.conns.Load(), Reason: why}
	}
	return out
}

// Ready reports whether at least one node is healthy and the proxy is not
// shutting down.
func (p *Proxy) Ready() bool {
	select {
	case <-p.draining:
		return false
	default:
	}
	for _, b := range p.backends {
		if b.healthy.Load() {
			return true
		}
	}
	return false
}

// ReadyHandler serves the gateway's own readiness: 200 while [Proxy.Ready],
// else 503, with the nodes' states as JSON. Load balancers poll it; the
// node's own /health and /health/readiness pass through the proxy as any
// other request.
func (p *Proxy) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ready := p.Ready()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(struct {
			Ready bool         `json:"ready"`
			Nodes []NodeStatus `json:"nodes"`
		}{ready, p.Nodes()})
	})
}
