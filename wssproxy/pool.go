package wssproxy

import (
	"net/url"
	"sort"
	"sync/atomic"
)

// backend is one node of the pool.
type backend struct {
	url     *url.URL // ws:// or wss://
	httpURL *url.URL // http:// or https://
	host    string   // for logs and metrics

	conns   atomic.Int64 // open proxied WebSocket connections
	healthy atomic.Bool  // the last check passed (see health.go)
	health  nodeHealth   // what the checks and the head subscriptions learned
	warm    warmConns    // connections dialed ahead (warm.go); counted in conns
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
