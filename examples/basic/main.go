// Command basic serves wss:// and https:// in front of a node's plain
// ws:// JSON-RPC port:
//
//	go run ./examples/basic
//
// With no flags it listens on :8443, proxies to ws://127.0.0.1:9944, and
// serves a self-signed certificate for localhost, 127.0.0.1 and ::1, kept
// in ./wssgate-cert so its fingerprint survives restarts. It logs the URL
// and the certificate's SHA-256 fingerprint. SIGINT or SIGTERM shut it
// down gracefully (clients get 1001); SIGHUP reloads -cert and -key.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/metrics"
	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/wssproxy"
	"golang.org/x/time/rate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	listen, upstream  string
	certFile, keyFile string
	hosts, certDir    string
	drain             time.Duration
	verbose           bool

	rate, msgRate               float64
	burst, msgBurst             int
	maxConnsPerClient, maxConns int
	maxSubs                     int
	trustedProxies              string
	allowAllMethods             bool
	allowedOrigins              string

	adminListen    string
	healthInterval time.Duration
	maxBlockLag    uint64
	stallTimeout   time.Duration
	maxFinalityLag uint64
	strictHealth   bool
}

// Default limits. The handshake limits are the nginx/Apache recipe's. The
// message limits are per connection and sized for real clients:
// @polkadot/api sends about 10 calls while it starts (8 measured, the
// metadata among them), and wallets fire a few hundred storage queries at
// once when an account page opens, so the burst is 1,000 and the steady
// rate 200 calls/s; a client that keeps going past that is refused call by
// call, and closed with 1008 after 1,000 refusals in a row.
const (
	defaultRate     = 2
	defaultBurst    = 5
	defaultConns    = 50
	defaultMsgRate  = 200
	defaultMsgBurst = 1000
	defaultMaxSubs  = 1024
)

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("basic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.listen, "listen", ":8443", "address to serve wss:// and https:// on")
	fs.StringVar(&c.upstream, "upstream", "ws://127.0.0.1:9944", "the node's ws:// or wss:// URL; several, comma-separated, form a pool")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:9616", "private address for /metrics (Prometheus), /debug/vars (expvar), /debug/pprof and /ready; empty disables")
	fs.DurationVar(&c.healthInterval, "health-interval", wssproxy.DefaultHealthInterval, "how often nodes are health-checked (negative: never)")
	fs.Uint64Var(&c.maxBlockLag, "max-block-lag", wssproxy.DefaultMaxBlockLag, "blocks a node may trail the best node and still get connections")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", 0, "how long a node's best block may stand still before the node is unhealthy (0: 6 block times, at least 60s; negative: never)")
	fs.Uint64Var(&c.maxFinalityLag, "max-finality-lag", wssproxy.DefaultMaxFinalityLag, "blocks a node's finalized block may trail its best block")
	fs.BoolVar(&c.strictHealth, "strict-health", false, "refuse new connections (503) while every node is unhealthy, instead of serving from the least bad one")
	fs.StringVar(&c.certFile, "cert", "", "PEM certificate chain (with -key) instead of a self-signed one; reloaded on change and SIGHUP")
	fs.StringVar(&c.keyFile, "key", "", "PEM private key for -cert")
	fs.StringVar(&c.hosts, "hosts", strings.Join(certs.DefaultSelfSignedHosts, ","), "comma-separated names and IPs for the self-signed certificate")
	fs.StringVar(&c.certDir, "self-signed-dir", "wssgate-cert", "directory keeping the self-signed pair (empty: in memory, new fingerprint each start)")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "how long shutdown waits for connections to close")
	fs.BoolVar(&c.verbose, "v", false, "debug logging")
	fs.Float64Var(&c.rate, "rate", defaultRate, "handshakes and HTTP requests per second per client (0: no limit)")
	fs.IntVar(&c.burst, "burst", defaultBurst, "burst for -rate")
	fs.IntVar(&c.maxConnsPerClient, "max-conns-per-client", defaultConns, "open WebSocket connections per client (0: no limit)")
	fs.IntVar(&c.maxConns, "max-conns", 0, "open WebSocket connections in total (0: no limit)")
	fs.Float64Var(&c.msgRate, "msg-rate", defaultMsgRate, "JSON-RPC calls per second per connection (0: no limit)")
	fs.IntVar(&c.msgBurst, "msg-burst", defaultMsgBurst, "burst for -msg-rate")
	fs.IntVar(&c.maxSubs, "max-subscriptions", defaultMaxSubs, "subscriptions per connection (0: no limit)")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of load balancers whose X-Forwarded-For is believed")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated browser origins allowed (empty: any)")
	fs.BoolVar(&c.allowAllMethods, "unsafe-allow-all-methods", false, "turn the JSON-RPC method policy off: the node's unsafe methods (author_insertKey, ...) become reachable")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, errors.New("-cert and -key go together")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"-rate", c.rate}, {"-burst", float64(c.burst)}, {"-max-conns-per-client", float64(c.maxConnsPerClient)},
		{"-max-conns", float64(c.maxConns)}, {"-msg-rate", c.msgRate}, {"-msg-burst", float64(c.msgBurst)}, {"-max-subscriptions", float64(c.maxSubs)}} {
		if f.v < 0 {
			return nil, fmt.Errorf("%s must not be negative", f.name)
		}
	}
	return c, nil
}

// run serves until ctx ends. ready, if not nil, receives the listening
// address once it accepts connections.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	src, reload, err := certSource(c, logger)
	if err != nil {
		return err
	}
	opts, err := proxyOptions(c, logger)
	if err != nil {
		return err
	}
	counters := metrics.NewCounters()
	opts.Metrics = counters.Hooks()
	var upstreams []string
	for u := range strings.SplitSeq(c.upstream, ",") {
		if u = strings.TrimSpace(u); u != "" {
			upstreams = append(upstreams, u)
		}
	}
	proxy, err := wssproxy.NewPool(upstreams, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		proxy.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.Handle("GET /wssgate/ready", proxy.ReadyHandler()) // for load balancers
	srv := wssproxy.NewServer(c.listen, mux, certs.TLSConfig(src), logger)
	if c.adminListen != "" {
		stop, err := serveAdmin(c.adminListen, proxy, counters, logger)
		if err != nil {
			proxy.Close()
			ln.Close()
			return err
		}
		defer stop()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	addr := ln.Addr().String()
	logger.Info("wssgate serving", "wss", "wss://"+displayAddr(addr), "https", "https://"+displayAddr(addr), "upstream", c.upstream)
	if ready != nil {
		ready <- addr
	}
	return serve(ctx, c, srv, proxy, serveErr, reload, logger)
}

// serve waits for ctx (then drains), a server error, or SIGHUP (reload).
func serve(ctx context.Context, c *config, srv *http.Server, proxy *wssproxy.Proxy, serveErr <-chan error, reload func() error, logger *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case err := <-serveErr:
			proxy.Close()
			return err
		case <-hup:
			if reload != nil {
				if err := reload(); err != nil {
					logger.Error("certificate reload failed; keeping the old one", "error", err)
				}
			}
		case <-ctx.Done():
			logger.Info("shutting down", "drain", c.drain)
			sctx, cancel := context.WithTimeout(context.Background(), c.drain)
			defer cancel()
			err := errors.Join(srv.Shutdown(sctx), proxy.Shutdown(sctx))
			if errors.Is(err, context.DeadlineExceeded) {
				logger.Warn("drain timed out; remaining connections dropped")
				err = nil
			}
			return err
		}
	}
}

// serveAdmin serves metrics and readiness on a separate, private address.
func serveAdmin(addr string, proxy *wssproxy.Proxy, counters *metrics.Counters, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-admin-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", counters)
	mux.Handle("GET /ready", proxy.ReadyHandler())
	mux.Handle("GET /debug/vars", expvarHandler(counters))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // CPU and heap profiles, for the benchmarks
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("admin endpoints", "metrics", "http://"+ln.Addr().String()+"/metrics", "ready", "http://"+ln.Addr().String()+"/ready")
	return func() { srv.Close() }, nil
}

// expvarHandler serves the metrics as expvar-style JSON without touching
// the process-wide expvar registry (run may be called more than once).
func expvarHandler(counters *metrics.Counters) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"wssgate": counters.Snapshot()})
	})
}

// proxyOptions maps the flags to wssproxy.Options.
func proxyOptions(c *config, logger *slog.Logger) (*wssproxy.Options, error) {
	o := &wssproxy.Options{Logger: logger, MaxSubscriptions: c.maxSubs, HealthInterval: c.healthInterval, MaxBlockLag: c.maxBlockLag,
		StallTimeout: c.stallTimeout, MaxFinalityLag: c.maxFinalityLag, StrictHealth: c.strictHealth}
	if c.trustedProxies != "" {
		trusted, err := ratelimit.ParseTrusted(c.trustedProxies)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies: %w", err)
		}
		o.TrustedProxies = trusted
	}
	if c.allowedOrigins != "" {
		o.AllowedOrigins = strings.Split(c.allowedOrigins, ",")
	}
	if c.allowAllMethods {
		o.Policy = wssproxy.AllowAll()
		logger.Warn("JSON-RPC method policy is off: the node's unsafe methods are reachable; start the node with --rpc-methods safe")
	}
	if c.rate > 0 {
		o.RequestLimit = ratelimit.NewBuckets(rate.Limit(c.rate), max(c.burst, 1))
	}
	if c.maxConnsPerClient > 0 || c.maxConns > 0 {
		o.ConnLimit = &ratelimit.Conns{PerKey: c.maxConnsPerClient, Total: c.maxConns}
	}
	if c.msgRate > 0 {
		o.MessageRate, o.MessageBurst = rate.Limit(c.msgRate), c.msgBurst
	}
	return o, nil
}

// certSource builds the certificate source from the flags, and a reload
// function for SIGHUP (nil when there is nothing to reload).
func certSource(c *config, logger *slog.Logger) (certs.Source, func() error, error) {
	if c.certFile != "" {
		f, err := certs.NewFile(c.certFile, c.keyFile)
		if err != nil {
			return nil, nil, err
		}
		f.Logger = logger
		return f, f.Reload, nil
	}
	var hosts []string
	for h := range strings.SplitSeq(c.hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	s := &certs.SelfSigned{Hosts: hosts, Dir: c.certDir, Logger: logger}
	if err := s.Init(); err != nil {
		return nil, nil, err
	}
	attrs := []any{"sha256", s.Fingerprint(), "hosts", strings.Join(hosts, ",")}
	if c.certDir != "" {
		attrs = append(attrs, "trust", c.certDir+"/cert.pem")
	}
	logger.Info("self-signed certificate", attrs...)
	return s, nil, nil
}

// displayAddr turns a listen address into one a local client can dial.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
