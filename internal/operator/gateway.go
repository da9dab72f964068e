package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/metrics"
	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/wssproxy"
	"golang.org/x/time/rate"
)

// Limiters are the limiters a [Program.Limiters] hook returns. A nil field
// keeps the in-memory limiter the flags configure.
type Limiters struct {
	// Request limits handshakes and HTTP requests per client (-rate, -burst).
	Request ratelimit.Limiter
	// Conn caps open WebSocket connections (-max-conns-per-client, -max-conns).
	Conn ratelimit.ConnLimiter
	// ClientMessage limits JSON-RPC calls per client across connections.
	ClientMessage ratelimit.Limiter
}

// gateway is the public handler. On SIGHUP, new limits are swapped in
// behind the proxy's limiter fields; a change that needs a new
// wssproxy.Proxy (the upstream list, the policy, message limits) builds
// one and swaps it in for new requests, while the previous one keeps its
// open connections and is closed once they are all gone. A reload drops
// nothing.
type gateway struct {
	prog    *Program
	logger  *slog.Logger
	metrics *metrics.Counters

	cur       atomic.Pointer[generation]
	request   swapLimiter // the proxies' limiters, swapped on reload
	conn      swapConnLimiter
	clientMsg swapLimiter
	stop      chan struct{} // closed on shutdown: retirers stop waiting
	stopOnce  sync.Once

	mu         sync.Mutex
	all        map[*wssproxy.Proxy]bool // current and retiring
	retirers   sync.WaitGroup
	buckets    *ratelimit.Buckets
	bucketsCfg [2]float64
	conns      *ratelimit.Conns
	connsCfg   [2]int
}

// generation is one configuration and the proxy serving it.
type generation struct {
	proxy     *wssproxy.Proxy
	cfg       *Config
	key       ratelimit.KeyFunc
	clientMsg bool // the proxy reads messages for a per-client call limit
}

func newGateway(p *Program, logger *slog.Logger, counters *metrics.Counters) *gateway {
	return &gateway{prog: p, logger: logger, metrics: counters, stop: make(chan struct{}), all: map[*wssproxy.Proxy]bool{}}
}

func (g *gateway) current() *generation { return g.cur.Load() }

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.current().proxy.ServeHTTP(w, r)
}

// apply makes c the running configuration: its limiters, and a new
// proxy unless c configures the proxy as the current one does.
func (g *gateway) apply(c *Config) error {
	lim, err := g.limiters(c)
	if err != nil {
		return err
	}
	if cur := g.current(); cur != nil && sameProxy(cur.cfg, c) && cur.clientMsg == (lim.ClientMessage != nil) {
		g.setLimiters(lim)
		g.cur.Store(&generation{proxy: cur.proxy, cfg: c, key: cur.key, clientMsg: cur.clientMsg})
		return nil
	}
	gen, err := g.build(c, lim.ClientMessage != nil)
	if err != nil {
		return err
	}
	g.setLimiters(lim)
	g.mu.Lock()
	g.all[gen.proxy] = true
	g.mu.Unlock()
	old := g.cur.Swap(gen)
	if old != nil {
		g.retire(old.proxy)
	}
	return nil
}

// build maps the configuration to a new proxy.
func (g *gateway) build(c *Config, clientMsg bool) (*generation, error) {
	opts := &wssproxy.Options{Logger: g.logger, Metrics: g.metrics.Hooks(), MaxSubscriptions: c.MaxSubscriptions,
		HealthInterval: c.HealthInterval, MaxBlockLag: c.MaxBlockLag,
		StallTimeout: c.StallTimeout, MaxFinalityLag: c.MaxFinalityLag, StrictHealth: c.StrictHealth,
		MaxConnsPerNode: c.MaxConnsPerNode, NodeWarmConns: c.NodeWarmConns}
	if c.TrustedProxies != "" {
		trusted, err := ratelimit.ParseTrusted(c.TrustedProxies)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies: %w", err)
		}
		opts.TrustedProxies = trusted
	}
	keyer := &ratelimit.Keyer{TrustedProxies: opts.TrustedProxies}
	opts.Key = keyer.Key
	if c.AllowedOrigins != "" {
		opts.AllowedOrigins = strings.Split(c.AllowedOrigins, ",")
	}
	opts.Deflate = &wssproxy.DeflateOptions{Disabled: !c.Deflate, Level: c.DeflateLevel, Threshold: c.DeflateThreshold}
	if c.DeflateThreshold == 0 {
		opts.Deflate.Threshold = -1 // every message
	}
	if c.AllowStorageScans {
		opts.Policy = &wssproxy.Policy{AllowStorageScans: true}
	}
	if c.AllowAllMethods {
		opts.Policy = wssproxy.AllowAll()
		g.logger.Warn("JSON-RPC method policy is off: the node's unsafe methods are reachable; start the node with --rpc-methods safe")
	}
	if c.MsgRate > 0 {
		opts.MessageRate, opts.MessageBurst = rate.Limit(c.MsgRate), c.MsgBurst
	}
	if c.Share {
		opts.Share = &wssproxy.ShareOptions{ConnsPerNode: c.ShareConns}
	}
	opts.RequestLimit, opts.ConnLimit = &g.request, &g.conn
	if clientMsg { // only then: without message limits a proxy reads no messages
		opts.ClientMessageLimit = &g.clientMsg
	}
	proxy, err := wssproxy.NewPool(c.Upstreams, opts)
	if err != nil {
		return nil, err
	}
	return &generation{proxy: proxy, cfg: c, key: opts.Key, clientMsg: clientMsg}, nil
}

func (g *gateway) setLimiters(l *Limiters) {
	g.request.set(l.Request)
	g.conn.set(l.Conn)
	g.clientMsg.set(l.ClientMessage)
}

// limiters returns the in-memory limiters for c, reusing the previous
// ones while their settings are unchanged (so counts and buckets survive a
// reload), with the hook's limiters in place of any it returns.
func (g *gateway) limiters(c *Config) (*Limiters, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var l Limiters
	if c.Rate > 0 {
		cfg := [2]float64{c.Rate, float64(max(c.Burst, 1))}
		if g.buckets == nil || g.bucketsCfg != cfg {
			g.buckets, g.bucketsCfg = ratelimit.NewBuckets(rate.Limit(c.Rate), max(c.Burst, 1)), cfg
		}
		l.Request = g.buckets
	}
	if c.MaxConnsPerClient > 0 || c.MaxConns > 0 {
		cfg := [2]int{c.MaxConnsPerClient, c.MaxConns}
		if g.conns == nil || g.connsCfg != cfg {
			g.conns, g.connsCfg = &ratelimit.Conns{PerKey: c.MaxConnsPerClient, Total: c.MaxConns}, cfg
		}
		l.Conn = g.conns
	}
	if g.prog.Limiters == nil {
		return &l, nil
	}
	h, err := g.prog.Limiters(c)
	if err != nil {
		return nil, err
	}
	if h != nil {
		if h.Request != nil {
			l.Request = h.Request
		}
		if h.Conn != nil {
			l.Conn = h.Conn
		}
		if h.ClientMessage != nil {
			l.ClientMessage = h.ClientMessage
		}
	}
	return &l, nil
}

// retireInterval is how often a replaced proxy is checked for remaining
// connections.
const retireInterval = time.Second

// retire closes p once its last connection ends (or at shutdown, when
// Shutdown drains it with the others).
func (g *gateway) retire(p *wssproxy.Proxy) {
	g.retirers.Go(func() {
		t := time.NewTicker(retireInterval)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
			}
			if p.Conns() == 0 {
				g.mu.Lock()
				delete(g.all, p)
				g.mu.Unlock()
				p.Close()
				return
			}
		}
	})
}

// proxies returns the current and retiring proxies.
func (g *gateway) proxies() []*wssproxy.Proxy {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*wssproxy.Proxy, 0, len(g.all))
	for p := range g.all {
		out = append(out, p)
	}
	return out
}

// Conns counts the open WebSocket connections of every generation.
func (g *gateway) Conns() int {
	n := 0
	for _, p := range g.proxies() {
		n += p.Conns()
	}
	return n
}

// Shutdown drains every generation's connections until ctx ends.
func (g *gateway) Shutdown(ctx context.Context) error {
	g.stopOnce.Do(func() { close(g.stop) })
	g.retirers.Wait()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range g.proxies() {
		wg.Go(func() {
			if err := p.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every generation at once.
func (g *gateway) Close() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.retirers.Wait()
	for _, p := range g.proxies() {
		p.Close()
	}
}

// readyHandler serves the current proxy's readiness.
func (g *gateway) readyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.current().proxy.ReadyHandler().ServeHTTP(w, r)
	})
}
