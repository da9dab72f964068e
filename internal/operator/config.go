package operator

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/wssproxy"
)

// Config is what the flags, the environment and the -config file set. A
// [Program.Limiters] hook reads it; the rest of the program treats it as
// read-only once parsed.
//
// Each field holds the flag named in its comment; -h gives the defaults.
type Config struct {
	Listen, HTTPListen, AdminListen string   // -listen, -http-listen, -admin-listen
	Upstreams                       []string // -upstream, validated ws:// or wss:// URLs

	CertFile, KeyFile string   // -cert, -key
	Hosts             []string // -hosts: the self-signed certificate's names
	SelfSignedDir     string   // -self-signed-dir

	Domains       []string // -domain: ACME mode when not empty
	Email         string   // -email
	ACMEDirectory string   // -acme-directory
	ACMECA        string   // -acme-ca
	ACMECache     string   // -acme-cache

	Drain          time.Duration // -drain
	Verbose        bool          // -v
	HealthInterval time.Duration // -health-interval
	MaxBlockLag    uint64        // -max-block-lag
	StallTimeout   time.Duration // -stall-timeout
	MaxFinalityLag uint64        // -max-finality-lag
	StrictHealth   bool          // -strict-health

	Rate, MsgRate               float64 // -rate, -msg-rate
	Burst, MsgBurst             int     // -burst, -msg-burst
	MaxConnsPerClient, MaxConns int     // -max-conns-per-client, -max-conns
	MaxConnsPerNode             int     // -max-conns-per-node
	NodeWarmConns               int     // -node-warm-conns
	MaxSubscriptions            int     // -max-subscriptions
	TrustedProxies              string  // -trusted-proxies
	AllowedOrigins              string  // -allowed-origins
	AllowAllMethods             bool    // -unsafe-allow-all-methods
	AllowStorageScans           bool    // -allow-storage-scans
	Share                       bool    // -share
	ShareConns                  int     // -share-conns

	Deflate                        bool // -deflate
	DeflateLevel, DeflateThreshold int  // -deflate-level, -deflate-threshold

	ConfigFile string // -config
	Version    bool   // -version

	// Logger is the program's logger, for hooks that log (set after
	// parsing; nil in a Config that was not run).
	Logger *slog.Logger

	// set holds the names of the flags given on the command line, in the
	// environment or in the file, so that ACME mode can pick other
	// defaults for the ones left out.
	set map[string]bool
}

// Default limits. The handshake limits are the nginx/Apache recipe's. The
// message limits are per connection and sized for real clients:
// @polkadot/api sends about 10 calls while it starts (8 measured, the
// metadata among them), and wallets fire a few hundred storage queries at
// once when an account page opens, so the burst is 1,000 and the steady
// rate 200 calls/s; a client that keeps going past that is refused call by
// call, and closed with 1008 after 1,000 refusals in a row.
const (
	DefaultRate     = 2
	DefaultBurst    = 5
	DefaultConns    = 50
	DefaultMsgRate  = 200
	DefaultMsgBurst = 1000
	DefaultMaxSubs  = 1024
	// DefaultConnsPerNode is a Substrate node's own --rpc-max-connections.
	DefaultConnsPerNode = 100
)

// listValue is a repeatable, comma-separable flag.
type listValue struct {
	p   *[]string
	set bool // the first Set replaces the default
}

func (l *listValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(v string) error {
	if !l.set {
		*l.p, l.set = nil, true
	}
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

// register defines the operator's flags on fs, writing into c.
func (c *Config) register(fs *flag.FlagSet) {
	c.Upstreams = []string{"ws://127.0.0.1:9944"}
	c.Hosts = append([]string(nil), certs.DefaultSelfSignedHosts...)
	fs.StringVar(&c.Listen, "listen", ":8443", "address to serve wss:// and https:// on (with -domain: :443 unless set)")
	fs.Var(&listValue{p: &c.Upstreams}, "upstream", "the node's ws:// or wss:// URL; several (repeated or comma-separated) form a pool")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:9616", "private address for the dashboard (/), /metrics, /debug/vars, /debug/pprof and /ready; empty disables")
	fs.StringVar(&c.HTTPListen, "http-listen", "", "plain HTTP address: redirects to https, and answers ACME HTTP-01 (with -domain: :80 unless set; empty disables)")
	fs.DurationVar(&c.HealthInterval, "health-interval", wssproxy.DefaultHealthInterval, "how often nodes are health-checked (negative: never)")
	fs.Uint64Var(&c.MaxBlockLag, "max-block-lag", wssproxy.DefaultMaxBlockLag, "blocks a node may trail the best node and still get connections")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", 0, "how long a node's best block may stand still before the node is unhealthy (0: 6 block times, at least 60s; negative: never)")
	fs.Uint64Var(&c.MaxFinalityLag, "max-finality-lag", wssproxy.DefaultMaxFinalityLag, "blocks a node's finalized block may trail its best block")
	fs.BoolVar(&c.StrictHealth, "strict-health", false, "refuse new connections (503) while every node is unhealthy, instead of serving from the least bad one")

	fs.StringVar(&c.CertFile, "cert", "", "PEM certificate chain (with -key) instead of a self-signed one; reloaded on change and SIGHUP")
	fs.StringVar(&c.KeyFile, "key", "", "PEM private key for -cert")
	fs.Var(&listValue{p: &c.Hosts}, "hosts", "names and IPs for the self-signed certificate (comma-separated)")
	fs.StringVar(&c.SelfSignedDir, "self-signed-dir", "wssgate-cert", "directory keeping the self-signed pair (empty: in memory, new fingerprint each start)")

	fs.Var(&listValue{p: &c.Domains}, "domain", "DNS name to get a Let's Encrypt certificate for (repeatable); switches to ACME with TLS-ALPN-01 on -listen and HTTP-01 on -http-listen")
	fs.StringVar(&c.Email, "email", "", "contact address for the ACME account (expiry notices)")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", "", "ACME directory URL (default Let's Encrypt production; staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&c.ACMECA, "acme-ca", "", "PEM file of the CA that signs the ACME directory's TLS certificate (private CAs such as Pebble)")
	fs.StringVar(&c.ACMECache, "acme-cache", certs.DefaultACMECacheDir, "directory for the ACME account key and certificates (keep it: restarts reuse them)")

	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "how long shutdown waits for connections to close")
	fs.BoolVar(&c.Verbose, "v", false, "debug logging")
	fs.Float64Var(&c.Rate, "rate", DefaultRate, "handshakes and HTTP requests per second per client (0: no limit)")
	fs.IntVar(&c.Burst, "burst", DefaultBurst, "burst for -rate")
	fs.IntVar(&c.MaxConnsPerClient, "max-conns-per-client", DefaultConns, "open WebSocket connections per client (0: no limit)")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "open WebSocket connections in total (0: no limit)")
	fs.IntVar(&c.MaxConnsPerNode, "max-conns-per-node", DefaultConnsPerNode, "open WebSocket connections per node: a Substrate node serves 100 (--rpc-max-connections); raise both together (0: no cap)")
	fs.IntVar(&c.NodeWarmConns, "node-warm-conns", 0, "WebSocket connections per node dialed ahead of clients, so a client waits only for its own handshake; the node then sees no X-Forwarded-For for the clients they serve (0: off)")
	fs.Float64Var(&c.MsgRate, "msg-rate", DefaultMsgRate, "JSON-RPC calls per second per connection (0: no limit)")
	fs.IntVar(&c.MsgBurst, "msg-burst", DefaultMsgBurst, "burst for -msg-rate")
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", DefaultMaxSubs, "subscriptions per connection (0: no limit)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of load balancers whose X-Forwarded-For is believed")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated browser origins allowed (empty: any)")
	fs.BoolVar(&c.AllowAllMethods, "unsafe-allow-all-methods", false, "turn the JSON-RPC method policy off: the node's unsafe methods (author_insertKey, ...) become reachable")
	fs.BoolVar(&c.Deflate, "deflate", true, "compress messages to clients that offer permessage-deflate (browsers, @polkadot/api); -deflate=false turns it off")
	fs.IntVar(&c.DeflateLevel, "deflate-level", wssproxy.DefaultDeflateLevel, "compression level, 1 (fastest) to 9 (smallest)")
	fs.IntVar(&c.DeflateThreshold, "deflate-threshold", wssproxy.DefaultDeflateThreshold, "messages under this many bytes go uncompressed (0: compress all)")
	fs.BoolVar(&c.AllowStorageScans, "allow-storage-scans", false, "let clients call state_getStorageSize(At), which on a key prefix makes the node scan the state with no timeout")

	fs.BoolVar(&c.Share, "share", false, "shared mode: carry every client over a few node connections, share head and storage subscriptions, cache answers that cannot change")
	fs.IntVar(&c.ShareConns, "share-conns", wssproxy.DefaultShareConnsPerNode, "with -share, connections per node")

	fs.StringVar(&c.ConfigFile, "config", "", "file of NAME=value lines (WSSGATE_LISTEN=:443, ...), re-read on SIGHUP")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
}

// validate checks the parsed values, naming the flag at fault, and applies
// the ACME-mode defaults.
func (c *Config) validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("-cert and -key go together")
	}
	if len(c.Domains) > 0 && c.CertFile != "" {
		return errors.New("-domain and -cert exclude each other: -domain gets certificates from Let's Encrypt")
	}
	if len(c.Domains) == 0 {
		for _, f := range []string{"email", "acme-directory", "acme-ca"} {
			if c.set[f] {
				return fmt.Errorf("-%s needs -domain, the name to get a certificate for", f)
			}
		}
	} else {
		for _, d := range c.Domains {
			if err := checkDomain(d); err != nil {
				return fmt.Errorf("-domain: %w", err)
			}
		}
		if !c.set["listen"] {
			c.Listen = ":443"
		}
		if !c.set["http-listen"] {
			c.HTTPListen = ":80"
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"-rate", c.Rate}, {"-burst", float64(c.Burst)}, {"-max-conns-per-client", float64(c.MaxConnsPerClient)},
		{"-max-conns", float64(c.MaxConns)}, {"-max-conns-per-node", float64(c.MaxConnsPerNode)}, {"-node-warm-conns", float64(c.NodeWarmConns)}, {"-msg-rate", c.MsgRate}, {"-msg-burst", float64(c.MsgBurst)},
		{"-max-subscriptions", float64(c.MaxSubscriptions)}, {"-drain", c.Drain.Seconds()}, {"-share-conns", float64(c.ShareConns)},
		{"-deflate-threshold", float64(c.DeflateThreshold)}} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative", f.name)
		}
	}
	if c.NodeWarmConns > 0 && c.Share {
		return errors.New("-node-warm-conns needs splice mode: -share keeps node connections of its own")
	}
	if c.DeflateLevel < 1 || c.DeflateLevel > 9 {
		return fmt.Errorf("-deflate-level %d: must be 1 (fastest) to 9 (smallest)", c.DeflateLevel)
	}
	if len(c.Upstreams) == 0 {
		return errors.New("-upstream: no node URL; for a local node: -upstream ws://127.0.0.1:9944")
	}
	for i, u := range c.Upstreams {
		v, err := checkUpstream(u)
		if err != nil {
			return fmt.Errorf("-upstream: %w", err)
		}
		c.Upstreams[i] = v
	}
	for _, a := range []struct{ name, v string }{{"-listen", c.Listen}, {"-http-listen", c.HTTPListen}, {"-admin-listen", c.AdminListen}} {
		if err := checkListen(a.v); err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}
	return nil
}

// needsRestart reports the flags whose change a SIGHUP cannot apply.
func (c *Config) needsRestart(next *Config) []string {
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, "-"+name)
		}
	}
	add("listen", c.Listen != next.Listen)
	add("http-listen", c.HTTPListen != next.HTTPListen)
	add("admin-listen", c.AdminListen != next.AdminListen)
	add("domain", strings.Join(c.Domains, ",") != strings.Join(next.Domains, ","))
	add("hosts", strings.Join(c.Hosts, ",") != strings.Join(next.Hosts, ","))
	add("self-signed-dir", c.SelfSignedDir != next.SelfSignedDir)
	add("cert", c.CertFile != next.CertFile)
	add("key", c.KeyFile != next.KeyFile)
	add("email", c.Email != next.Email)
	add("acme-directory", c.ACMEDirectory != next.ACMEDirectory)
	add("acme-ca", c.ACMECA != next.ACMECA)
	add("acme-cache", c.ACMECache != next.ACMECache)
	add("v", c.Verbose != next.Verbose)
	return out
}
