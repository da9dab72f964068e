package operator

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/ratelimit"
)

// swapLimiter is the proxy's request limiter: a reload swaps the limiter
// behind it without a new proxy. A nil limiter allows everything.
type swapLimiter struct {
	cur atomic.Pointer[ratelimit.Limiter]
}

func (s *swapLimiter) set(l ratelimit.Limiter) { s.cur.Store(&l) }

func (s *swapLimiter) Allow(key string) (bool, time.Duration) {
	if p := s.cur.Load(); p != nil && *p != nil {
		return (*p).Allow(key)
	}
	return true, 0
}

// swapConnLimiter is swapLimiter for connection caps. A slot is released
// to the limiter it was taken from.
type swapConnLimiter struct {
	cur atomic.Pointer[ratelimit.ConnLimiter]
}

func (s *swapConnLimiter) set(l ratelimit.ConnLimiter) { s.cur.Store(&l) }

func (s *swapConnLimiter) Acquire(key string) (func(), error) {
	if p := s.cur.Load(); p != nil && *p != nil {
		return (*p).Acquire(key)
	}
	return func() {}, nil
}

var (
	_ ratelimit.Limiter     = (*swapLimiter)(nil)
	_ ratelimit.ConnLimiter = (*swapConnLimiter)(nil)
)

// sameProxy reports whether a and b configure the proxy alike, so that a
// reload between them only swaps limiters and keeps the proxy (and its
// exact per-node connection counts). A reload that builds a new proxy
// counts -max-conns-per-node afresh: connections the old proxy still
// holds are not counted against the new one's cap until they close.
func sameProxy(a, b *Config) bool {
	return slices.Equal(a.Upstreams, b.Upstreams) && a.TrustedProxies == b.TrustedProxies &&
		a.AllowedOrigins == b.AllowedOrigins && a.AllowAllMethods == b.AllowAllMethods && a.AllowStorageScans == b.AllowStorageScans &&
		a.MsgRate == b.MsgRate && a.MsgBurst == b.MsgBurst && a.MaxSubscriptions == b.MaxSubscriptions &&
		a.HealthInterval == b.HealthInterval && a.MaxBlockLag == b.MaxBlockLag &&
		a.StallTimeout == b.StallTimeout && a.MaxFinalityLag == b.MaxFinalityLag && a.StrictHealth == b.StrictHealth &&
		a.MaxConnsPerNode == b.MaxConnsPerNode && a.NodeWarmConns == b.NodeWarmConns
}
