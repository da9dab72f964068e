package wssproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Proxy is an http.Handler that puts a node's ws:// (or wss://) JSON-RPC
// endpoint behind the server it is mounted on. WebSocket upgrades are
// spliced to the node; other HTTP requests (JSON-RPC POSTs, health checks)
// are forwarded to the node's http:// (or https://) equivalent.
//
// Create one with [New]; the zero Proxy is not usable. A Proxy is safe for
// concurrent use. Hijacked WebSocket connections are invisible to
// [http.Server.Shutdown], so call [Proxy.Shutdown] (or [Proxy.Close]) too.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	metrics  hooks
	backends []*backend
	rr       atomic.Uint64 // round-robin start among equally loaded nodes
	dial     *http.Client  // health checks
	nodes    *nodeDialer   // WebSocket dials to nodes
	wsDial   *http.Client  // the websocket package's dials to nodes (head subscriptions)
	// Options.UpstreamHeader as written on every node upgrade request, and
	// its User-Agent and Origin, sent unless the client's replace them
	upstreamLines              []byte
	upstreamUA, upstreamOrigin string
	http                       *httputil.ReverseProxy
	hub                        *shareHub // shared mode; nil for splice mode
	warm                       *warmPool // Options.NodeWarmConns; nil without

	// Health (health.go): checkMu serializes checks; allDown is whether
	// every node was unhealthy at the last record.
	checkMu    sync.Mutex
	allDown    atomic.Bool
	blockTimes blockTimes

	mu         sync.Mutex
	conns      map[*proxyConn]struct{}
	closing    bool
	draining   chan struct{} // closed when Shutdown or Close starts
	done       sync.WaitGroup
	healthDone sync.WaitGroup

	testHookDrain func() // if set, called as each drain starts; for tests
}

// New returns a Proxy for the node at upstream, a ws:// or wss:// URL such
// as "ws://127.0.0.1:9944". opts may be nil for the defaults; invalid
// options fail here with an error naming the field.
func New(upstream string, opts *Options) (*Proxy, error) {
	return NewPool([]string{upstream}, opts)
}

// NewPool returns a Proxy for several nodes serving the same chain. Each
// new connection goes to the healthy node with the fewest connections;
// a node that fails its health checks (see Options.HealthInterval) or a
// dial takes no new connections until it recovers, and a failed dial
// moves on to the next node. Clients of a node that goes away are closed
// with 1012 so that they reconnect, to a healthy node.
//
// The proxy checks the nodes' health in a goroutine until Close or
// Shutdown.
func NewPool(upstreams []string, opts *Options) (*Proxy, error) {
	if len(upstreams) == 0 {
		return nil, errors.New("wssproxy: no upstream node")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		opts:     o,
		log:      o.Logger,
		conns:    make(map[*proxyConn]struct{}),
		draining: make(chan struct{}),
	}
	if o.Metrics != nil {
		p.metrics = hooks{*o.Metrics}
	}
	for i, s := range upstreams {
		name := "upstream"
		if len(upstreams) > 1 {
			name = fmt.Sprintf("upstreams[%d]", i)
		}
		u, err := parseUpstream(name, s)
		if err != nil {
			return nil, err
		}
		p.backends = append(p.backends, newBackend(u))
	}
	tr := p.transport()
	p.dial = &http.Client{Transport: tr}
	p.nodes = newNodeDialer(&p.opts)
	p.wsDial = &http.Client{Transport: &upgradeTransport{p.nodes}}
	p.upstreamLines, p.upstreamUA, p.upstreamOrigin = renderUpstreamHeader(o.UpstreamHeader)
	p.http = p.reverseProxy(tr)
	if o.Share != nil {
		p.hub = newShareHub(p, o.Share)
	}
	p.warm = newWarmPool(p) // before the checks, which poke it
	if o.HealthInterval > 0 {
		p.healthDone.Add(1)
		go p.healthLoop()
	}
	return p, nil
}

// parseUpstream parses and checks one upstream URL; name is the argument
// to name in errors ("upstream", or "upstreams[i]" in a pool).
func parseUpstream(name, s string) (*url.URL, error) {
	if hostPort, _, _ := strings.Cut(s, "/"); !strings.Contains(s, "://") && hostPort != "" {
		if _, _, err := net.SplitHostPort(hostPort); err == nil {
			return nil, fmt.Errorf("wssproxy: %s %q has no scheme; did you mean %q?", name, s, "ws://"+s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("wssproxy: %s %q: %w", name, s, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("wssproxy: %s %q: scheme must be ws:// or wss://", name, s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("wssproxy: %s %q: missing host", name, s)
	}
	if u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("wssproxy: %s %q: user info and fragments are not supported", name, s)
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		// url.Parse checks that a port is digits, not its range.
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("wssproxy: %s %q: port %q is not in 1-65535", name, s, port)
		}
	}
	return u, nil
}

// ServeHTTP splices a WebSocket upgrade to the node, or forwards a plain
// HTTP request to it. For a WebSocket it returns once the connection is
// spliced, which goes on in goroutines of the proxy's own (tracked for
// Shutdown and Close); so cap connections with Options.ConnLimit, not
// with middleware that counts ServeHTTP calls in progress.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.refuseUnhealthy(w, r) {
		return
	}
	if hasToken(r.Header, "Connection", "upgrade") {
		if !hasToken(r.Header, "Upgrade", "websocket") {
			p.refuse(w, r, http.StatusBadRequest, RefusalBadHandshake, "only WebSocket upgrades are supported")
			return
		}
		p.serveWebSocket(w, r)
		return
	}
	p.serveHTTP(w, r)
}

// hasToken reports whether the comma-separated header name contains token,
// case-insensitively (RFC 9110 section 5.6.1).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
