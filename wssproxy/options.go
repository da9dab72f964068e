package wssproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"time"

	"github.com/wssgate/wssgate/ratelimit"
	"golang.org/x/time/rate"
)

// Defaults applied by [New] to zero fields of [Options].
const (
	// DefaultReadLimit is a Substrate node's own request and response limit
	// (--rpc-max-request-size / --rpc-max-response-size, 15 MiB).
	DefaultReadLimit = 15 << 20
	// DefaultMaxBodyBytes bounds plain HTTP request bodies.
	DefaultMaxBodyBytes = 15 << 20
	// DefaultDialTimeout bounds the TCP (and TLS) connect to the node.
	DefaultDialTimeout = 5 * time.Second
	// DefaultHandshakeTimeout bounds the whole WebSocket handshake with the node.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultPingInterval is how often both peers are pinged.
	DefaultPingInterval = 20 * time.Second
	// DefaultWriteTimeout bounds one message write to either peer.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultHealthInterval is how often nodes are health-checked.
	DefaultHealthInterval = 10 * time.Second
	// DefaultMaxBlockLag is how far behind the best node a node may be.
	DefaultMaxBlockLag = 10
	// DefaultMinStallTimeout is the least time a node's best block may
	// stand still before the node counts as stalled, when StallTimeout is
	// derived from the observed block time.
	DefaultMinStallTimeout = 60 * time.Second
	// StallTimeoutBlocks is how many observed block times (the median
	// interval between heads) a node's best block may stand still, when
	// StallTimeout is zero.
	StallTimeoutBlocks = 6
	// DefaultMaxFinalityLag is how many blocks a node's finalized block may
	// trail its best block. GRANDPA finalizes within a few blocks; 50 is
	// five minutes of 6 s blocks.
	DefaultMaxFinalityLag = 50
)

// Options configures a [Proxy]. The zero value (or a nil *Options) gives
// production defaults; each field documents its own.
//
// [New] copies the Options, so changing them afterwards has no effect.
type Options struct {
	// ReadLimit is the largest WebSocket message, in bytes, read from either
	// the client or the node. A bigger message closes the sender's
	// connection with 1009 (message too big).
	// If zero, DefaultReadLimit (15 MiB, the node's own limit). If negative,
	// messages are unbounded: unsafe, a client can then make the gateway
	// buffer as much as it likes.
	ReadLimit int64

	// MaxBodyBytes is the largest plain HTTP request body forwarded to the
	// node; a bigger one is refused with 413.
	// If zero, DefaultMaxBodyBytes. Negative is invalid.
	MaxBodyBytes int64

	// DialTimeout bounds connecting to the node (TCP, and TLS for wss://).
	// If zero, DefaultDialTimeout.
	DialTimeout time.Duration

	// HandshakeTimeout bounds the whole upstream WebSocket handshake, dial
	// included. A node that accepts TCP but never answers the upgrade gets
	// the client a 504.
	// If zero, DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// IdleTimeout closes a connection (1001) when no data message has passed
	// in either direction for this long. Pings do not count as activity.
	// If zero, connections never idle out: unlike nginx's 60 s
	// proxy_read_timeout, which silently kills quiet subscriptions, dead
	// peers are found by PingInterval instead.
	IdleTimeout time.Duration

	// PingInterval is how often the gateway pings the client and the node;
	// a peer that does not answer within PingInterval is treated as dead
	// (client closed; node: client closed with 1012). Pings from either
	// peer are always answered.
	// If zero, DefaultPingInterval. Negative disables keepalive pings.
	PingInterval time.Duration

	// WriteTimeout bounds a single message write to either peer. A client
	// that stops reading is closed once its socket buffers are full for
	// this long, so nothing queues up in the gateway.
	// If zero, DefaultWriteTimeout. Negative disables it.
	WriteTimeout time.Duration

	// AllowedOrigins lists the browser origins allowed to open a WebSocket,
	// as host patterns matched with path.Match (e.g. "polkadot.js.org",
	// "*.example.com"), or full origins ("https://app.example.com").
	// Requests without an Origin header (non-browser clients) are always
	// allowed. If empty, any origin is allowed, since Polkadot-JS UI and
	// other wallets run on their own origins.
	AllowedOrigins []string

	// ForwardOrigin sends the browser's Origin header to the node. If
	// false, Origin is dropped: the gateway's AllowedOrigins decide, and a
	// node's default CORS list (which refuses every web app but
	// polkadot.js.org) is not consulted.
	ForwardOrigin bool

	// TrustedProxies lists the networks of proxies in front of the gateway
	// (load balancers) whose X-Forwarded-For, X-Forwarded-Proto and
	// Forwarded headers are believed. The gateway appends the peer address
	// to what trusted hops sent; from any other peer those headers are
	// replaced. If empty, no peer is trusted.
	TrustedProxies []netip.Prefix

	// UpstreamTLS configures TLS to a wss:// (or https://) node. The
	// WebSocket dials use a copy per node, with a session cache of the
	// gateway's own if it has none, so that they resume TLS sessions.
	// If nil, the system roots verify the node's certificate.
	UpstreamTLS *tls.Config

	// UpstreamHeader holds extra headers sent to the node on every request
	// (an API key for a hosted node, say). If nil, none.
	UpstreamHeader http.Header

	// HealthInterval is how often each node is asked for system_health
	// (and, while the gateway's head subscriptions on it are down, its
	// best and finalized heads), and probed for whether it serves unsafe
	// methods (see [NodeStatus].UnsafeMethods). A node that is
	// unreachable, syncing, without peers it should have, stalled (see
	// StallTimeout), finality stalled (see MaxFinalityLag) or more than
	// MaxBlockLag blocks behind the best node takes no new connections
	// until it recovers.
	// If zero, DefaultHealthInterval. Negative disables the checks and the
	// head subscriptions (a node is then only skipped while dials to it
	// fail).
	HealthInterval time.Duration

	// MaxBlockLag is how many blocks a node may trail the pool's best node
	// and still count as healthy. If zero, DefaultMaxBlockLag.
	MaxBlockLag uint64

	// StallTimeout is how long a node's best block may stand still before
	// the node is unhealthy ("stalled at #N for 3m"), even alone in its
	// pool: a node that serves a chain state of last week with 200 OK is
	// worse than one that is down. Heads come from a chain_subscribeNewHeads
	// and a chain_subscribeFinalizedHeads subscription the gateway keeps on
	// each node, or from the health checks while those fail.
	// If zero, StallTimeoutBlocks (6) times the median interval between
	// heads the gateway has observed, and at least DefaultMinStallTimeout
	// (60 s). Negative disables it (for chains that make blocks only on
	// demand, such as an instant-seal dev node).
	// Needs the health checks (HealthInterval not negative).
	StallTimeout time.Duration

	// MaxFinalityLag is how many blocks a node's finalized block may trail
	// its own best block before the node is unhealthy (finality stalled).
	// If zero, DefaultMaxFinalityLag. Set it to math.MaxUint64 to ignore
	// finality.
	MaxFinalityLag uint64

	// StrictHealth refuses new WebSocket connections and HTTP requests with
	// 503 and Retry-After while every node is unhealthy. If false, the
	// gateway keeps serving from the least bad node when every node is
	// unhealthy, since refusing everything would take a slow chain off the
	// air, but it says so: ReadyHandler answers 503 with each node's
	// reason, and a WARN is logged.
	StrictHealth bool

	// now is the clock of the health checks; nil is time.Now. Tests set it.
	now func() time.Time

	// Logger receives the proxy's structured logs.
	// If nil, slog.Default().
	Logger *slog.Logger

	// Metrics receives connections, traffic, dials and refusals through
	// its hooks, copied by New. If nil, or for a nil hook, nothing is
	// reported. The metrics package provides hooks that count for
	// Prometheus and expvar.
	Metrics *Metrics

	// resolver, if set, resolves node names: a test seam for a DNS server
	// on loopback.
	resolver *net.Resolver

	// Policy decides which JSON-RPC methods clients may call, over
	// WebSocket (each message, and each element of a batch) and HTTP POST.
	// A refused call is answered with a JSON-RPC error naming the method
	// and never reaches the node.
	// If nil, DefaultPolicy(): the node's unsafe methods are refused. Use
	// AllowAll() to turn inspection off (a pure splice, e.g. for a libp2p
	// bootnode); that exposes a node's unsafe methods if it serves them.
	Policy *Policy

	// Key identifies the client for per-client limits and logs.
	// If nil, the peer address (IPv6 grouped by /64), or the address
	// trusted proxies report (see TrustedProxies).
	Key ratelimit.KeyFunc

	// RequestLimit limits WebSocket handshakes and plain HTTP requests
	// per client key; a refused one gets 429 with Retry-After.
	// If nil, no limit. The nginx recipe's limit_req rate=2r/s burst=5 is
	// ratelimit.NewBuckets(2, 5).
	RequestLimit ratelimit.Limiter

	// ConnLimit caps open WebSocket connections per client key and in
	// total; a refused handshake gets 429 (per client) or 503 (total)
	// before the node is dialed. If nil, no cap. Apache's
	// QS_SrvMaxConnPerIP 50 is &ratelimit.Conns{PerKey: 50}.
	ConnLimit ratelimit.ConnLimiter

	// MaxConnsPerNode caps the WebSocket connections the gateway holds to
	// each node. A Substrate node serves 100 by default
	// (--rpc-max-connections) and refuses the dial past that, which costs
	// the client a 502; with the cap, the gateway answers 503 with
	// Retry-After before any dial, and in a pool a full node is skipped for
	// another. Raise the node's flag and this together. Plain HTTP
	// requests, on the gateway's pooled connections, are not counted.
	// If zero, no cap. Negative is invalid.
	MaxConnsPerNode int

	// NodeWarmConns is how many WebSocket connections to each healthy
	// node the gateway keeps dialed and upgraded ahead of demand, so that a
	// client waits only for its own handshake, not for the node's. A warm
	// connection serves a client that asks for the upstream URL's own path
	// ("/" or none) with no query and no subprotocol (and, with
	// ForwardOrigin, no Origin); other clients get a connection of their
	// own as without it. It is dialed before its client is known, so the
	// node sees no X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
	// X-Forwarded-Host, client User-Agent or Origin on it, only
	// UpstreamHeader: a node that keys its own limits on X-Forwarded-For
	// (--rpc-rate-limit with trusted proxies) counts those clients as the
	// gateway. The connection log line says warm=true.
	// Warm connections count against MaxConnsPerNode. A node's are
	// dropped when it turns unhealthy, a warm connection the node closes
	// is replaced, and one no client took within PingInterval (default
	// DefaultPingInterval) is closed and replaced, since idle it is not
	// pinged. A failed dial is retried after 1 s, doubling up to 30 s.
	// If zero, none: every client's node connection is dialed during its
	// handshake. Negative is invalid, as is a positive value in shared
	// mode (Share), which keeps node connections of its own.
	NodeWarmConns int

	// MessageRate limits JSON-RPC calls per second on one connection,
	// with bursts of MessageBurst. A call over the limit is answered with
	// a JSON-RPC error (code -32005, "limit exceeded") carrying its id and
	// saying when to retry, and never reaches the node; an over-limit
	// notification is dropped. Each element of a batch counts as a call.
	// If zero, no per-connection limit.
	MessageRate rate.Limit

	// MessageBurst is the per-connection burst for MessageRate.
	// If zero, one second's worth of MessageRate (at least 1).
	MessageBurst int

	// ClientMessageLimit limits JSON-RPC calls per client key across all
	// of its connections, answered like MessageRate. If nil, no limit.
	ClientMessageLimit ratelimit.Limiter

	// MessageLimitDelay, if positive, makes a call over a message limit
	// wait up to this long for its turn instead of being refused; the
	// client's other messages wait behind it. If zero, over-limit calls
	// are refused at once.
	MessageLimitDelay time.Duration

	// MaxRefusedCalls closes a client with 1008 (policy violation) once
	// more than this many of its calls in a row were refused for rate: it
	// is flooding, not bursting. If zero, 1000. Negative: never.
	MaxRefusedCalls int

	// Deflate configures permessage-deflate (RFC 7692) with clients that
	// offer it, as browsers and Node's ws do: the gateway compresses text
	// messages to the client of at least DefaultDeflateThreshold bytes (a
	// 1.37 MB metadata reply goes as 347 KB) and inflates what the client
	// compresses; the node's side stays plain. ReadLimit bounds a client's
	// messages inflated.
	// If nil, it is on with the defaults of [DeflateOptions]; set
	// Disabled to turn it off (a bootnode should: libp2p's frames are
	// encrypted and do not compress).
	Deflate *DeflateOptions

	// MaxSubscriptions caps open subscriptions per connection, counted
	// from *_subscribe* (and submitAndWatch, follow) calls and their
	// replies; one over the cap is answered with a -32005 error.
	// If zero, no cap (a Substrate node's own is 1024).
	MaxSubscriptions int

	// Share, if not nil, turns on shared mode: instead of one node
	// connection per client, every client's calls are carried over a few
	// node connections per node (ShareOptions.ConnsPerNode) under the
	// gateway's own ids; subscriptions whose notifications are the same
	// for everyone (new heads, finalized heads, runtime version, storage
	// keys, justifications) are opened once on the node and shared; and
	// answers that cannot change are cached. The method policy and the
	// per-client limits act as without it. JSON-RPC POSTs go over the
	// same node connections and cache; other HTTP requests are forwarded
	// as without it.
	// The node connections are kept in goroutines until Close or
	// Shutdown. If nil, each client WebSocket is spliced to a node
	// connection of its own.
	Share *ShareOptions
}

// withDefaults validates o and returns a copy with defaults applied.
// Errors name the offending field.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	switch {
	case c.MaxBodyBytes == 0:
		c.MaxBodyBytes = DefaultMaxBodyBytes
	case c.MaxBodyBytes < 0:
		return c, fmt.Errorf("wssproxy: Options.MaxBodyBytes is %d; it must not be negative", c.MaxBodyBytes)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
		neg  bool // negative allowed (means "off")
	}{
		{"DialTimeout", &c.DialTimeout, DefaultDialTimeout, false},
		{"HandshakeTimeout", &c.HandshakeTimeout, DefaultHandshakeTimeout, false},
		{"IdleTimeout", &c.IdleTimeout, 0, false},
		{"PingInterval", &c.PingInterval, DefaultPingInterval, true},
		{"WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout, true},
		{"HealthInterval", &c.HealthInterval, DefaultHealthInterval, true},
		{"StallTimeout", &c.StallTimeout, 0, true},
	}
	for _, d := range durations {
		if *d.v < 0 && !d.neg {
			return c, fmt.Errorf("wssproxy: Options.%s is %v; it must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	c.TrustedProxies = append([]netip.Prefix(nil), c.TrustedProxies...)
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	c.UpstreamHeader = c.UpstreamHeader.Clone()
	for i, pat := range c.AllowedOrigins {
		if _, err := path.Match(originHost(pat), ""); err != nil || pat == "" {
			return c, fmt.Errorf("wssproxy: Options.AllowedOrigins[%d] %q is not a valid pattern", i, pat)
		}
	}
	for i, p := range c.TrustedProxies {
		if !p.IsValid() {
			return c, fmt.Errorf("wssproxy: Options.TrustedProxies[%d] is not a valid prefix", i)
		}
		c.TrustedProxies[i] = p.Masked()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := c.Deflate.check(); err != nil {
		return c, err
	}
	if c.Deflate != nil {
		d := *c.Deflate
		c.Deflate = &d
	}
	if c.Policy == nil {
		c.Policy = DefaultPolicy()
	}
	if err := c.Policy.Validate(); err != nil {
		return c, err
	}
	if c.Key == nil {
		k := &ratelimit.Keyer{TrustedProxies: c.TrustedProxies}
		c.Key = k.Key
	}
	switch {
	case c.MessageRate < 0:
		return c, fmt.Errorf("wssproxy: Options.MessageRate is %v; it must not be negative", c.MessageRate)
	case c.MessageBurst < 0:
		return c, fmt.Errorf("wssproxy: Options.MessageBurst is %d; it must not be negative", c.MessageBurst)
	case c.MaxSubscriptions < 0:
		return c, fmt.Errorf("wssproxy: Options.MaxSubscriptions is %d; it must not be negative", c.MaxSubscriptions)
	case c.MaxConnsPerNode < 0:
		return c, fmt.Errorf("wssproxy: Options.MaxConnsPerNode is %d; it must not be negative", c.MaxConnsPerNode)
	case c.NodeWarmConns < 0:
		return c, fmt.Errorf("wssproxy: Options.NodeWarmConns is %d; it must not be negative", c.NodeWarmConns)
	case c.NodeWarmConns > 0 && c.Share != nil:
		return c, errors.New("wssproxy: Options.NodeWarmConns needs splice mode: shared mode (Options.Share) keeps node connections of its own")
	case c.MessageLimitDelay < 0:
		return c, fmt.Errorf("wssproxy: Options.MessageLimitDelay is %v; it must not be negative", c.MessageLimitDelay)
	}
	if c.MessageRate > 0 && c.MessageBurst == 0 {
		c.MessageBurst = max(1, int(c.MessageRate))
	}
	if c.MaxBlockLag == 0 {
		c.MaxBlockLag = DefaultMaxBlockLag
	}
	if c.MaxFinalityLag == 0 {
		c.MaxFinalityLag = DefaultMaxFinalityLag
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.MaxRefusedCalls == 0 {
		c.MaxRefusedCalls = 1000
	}
	share, err := c.Share.withDefaults()
	if err != nil {
		return c, err
	}
	c.Share = share
	return c, nil
}
