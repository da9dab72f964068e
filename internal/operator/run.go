package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/metrics"
	"github.com/wssgate/wssgate/wssproxy"
	"golang.org/x/crypto/acme/autocert"
)

// Program is one operator binary. The zero value is examples/basic; the
// optional fields let another binary extend it without copying it.
type Program struct {
	// Name is the program's name in logs and -h. If empty, "wssgate".
	Name string
	// Summary is the first sentence of -h. If empty, the gateway's.
	Summary string
	// Example is the example command line of -h. If empty,
	// "go run ./examples/basic -upstream ws://127.0.0.1:9944".
	Example string
	// Flags, if set, registers extra flags. They get environment
	// variables and -config lines like the built-in ones.
	Flags func(fs *flag.FlagSet)
	// Limiters, if set, returns limiters for the parsed configuration (at
	// start and on each SIGHUP); its non-nil fields replace the in-memory
	// limiters of the flags. An error stops the start, or the reload.
	Limiters func(c *Config) (*Limiters, error)
	// ACMECache, if set, returns the cache for the ACME account and
	// certificates (once, at start, with -domain), in place of the
	// -acme-cache directory: for example one shared by replicas.
	ACMECache func(c *Config) (autocert.Cache, error)
	// Getenv reads the environment. If nil, os.Getenv.
	Getenv func(string) string
}

func (p *Program) name() string {
	if p.Name != "" {
		return p.Name
	}
	return "wssgate"
}

func (p *Program) summary() string {
	if p.Summary != "" {
		return p.Summary
	}
	return p.name() + " serves a Substrate node's ws:// JSON-RPC port as wss:// and https://, with a self-signed or Let's Encrypt certificate, per-client limits, a node pool, metrics and a status page."
}

func (p *Program) example() string {
	if p.Example != "" {
		return p.Example
	}
	return "go run ./examples/basic -upstream ws://127.0.0.1:9944   (Let's Encrypt: -domain node.example.com -email you@example.com)"
}

func (p *Program) getenv(k string) string {
	if p.Getenv != nil {
		return p.Getenv(k)
	}
	return os.Getenv(k)
}

// Addrs are the addresses the gateway listens on, sent on Run's ready
// channel once it serves.
type Addrs struct {
	TLS, HTTP, Admin string
}

// Main runs the program until SIGINT or SIGTERM and returns the exit
// code: 0 after a clean shutdown, -h or -version; 1 on any error (already
// logged).
func (p *Program) Main(ctx context.Context, args []string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := p.Run(ctx, args, os.Stdout, os.Stderr, nil)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return 1
	}
	return 0
}

// Run serves until ctx ends, then drains for -drain. Errors are logged
// to stderr in the one log format, and returned. -h prints the usage on
// stdout and returns flag.ErrHelp. ready, if not nil, receives the
// addresses once the gateway serves.
func (p *Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- Addrs) error {
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c, fs, err := p.parse(args, p.getenv)
	if errors.Is(err, flag.ErrHelp) {
		p.usage(stdout, fs)
		return err
	}
	if err == nil && c.Version {
		fmt.Fprintln(stdout, p.name(), Version())
		return nil
	}
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		logger.Error("bad configuration; run with -h for the flags", "err", err)
		return err
	}
	if c.Verbose {
		level.Set(slog.LevelDebug)
	}
	c.Logger = logger
	// SIGHUP is caught from here on, so it never kills a starting gateway.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := &server{prog: p, cfg: c, args: args, logger: logger}
	if err := s.start(ctx); err != nil {
		logger.Error("cannot start", "err", err)
		s.closeAll()
		return err
	}
	if ready != nil {
		ready <- s.addrs
	}
	return s.serve(ctx, hup)
}

// Version describes the build: the module version (or "(devel)") and the
// VCS revision when known.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))] + modified
	}
	return v + " " + bi.GoVersion
}

// server is one running gateway.
type server struct {
	prog   *Program
	cfg    *Config // as started: the listeners and certificates; reloads go to gw
	args   []string
	logger *slog.Logger

	certs    *certSet
	obtained atomic.Pointer[map[string]bool] // ACME names obtained at start
	gw       *gateway
	metrics  *metrics.Counters
	history  *history
	servers  []*http.Server
	lns      []net.Listener
	addrs    Addrs
	serveErr chan error
	started  time.Time
}

// start binds every listener first (so a taken port is the first thing
// reported), then builds the certificates and the proxy, starts serving,
// obtains ACME certificates and logs the banner.
func (s *server) start(ctx context.Context) error {
	c := s.cfg
	s.started = time.Now()
	// No TCP keepalive on the public listener: the proxy pings every
	// WebSocket client (wssproxy.Options.PingInterval) and the server
	// closes idle HTTP connections (wssproxy.ServerIdleTimeout), and it
	// saves four system calls on every accepted connection.
	tlsLn, err := s.listen("-listen", c.Listen, -1)
	if err != nil {
		return err
	}
	s.addrs.TLS = tlsLn.Addr().String()
	var httpLn, adminLn net.Listener
	if c.HTTPListen != "" {
		if httpLn, err = s.listen("-http-listen", c.HTTPListen, 0); err != nil {
			return err
		}
		s.addrs.HTTP = httpLn.Addr().String()
	}
	if c.AdminListen != "" {
		if adminLn, err = s.listen("-admin-listen", c.AdminListen, 0); err != nil {
			return err
		}
		s.addrs.Admin = adminLn.Addr().String()
	}
	if s.certs, err = newCertSet(c, s.logger, s.prog.ACMECache); err != nil {
		return err
	}
	s.metrics = metrics.NewCounters()
	s.gw = newGateway(s.prog, s.logger, s.metrics)
	if err := s.gw.apply(c); err != nil {
		return err
	}
	s.history = newHistory(s.metrics, s.gw.Conns)
	s.serveErr = make(chan error, 3)
	mux := http.NewServeMux()
	mux.Handle("/", s.publicHandler())
	mux.Handle("GET /wssgate/ready", s.gw.readyHandler()) // for load balancers
	s.serveOn(wssproxy.NewServer(c.Listen, mux, certs.TLSConfig(s.certs.src), s.logger), tlsLn, true)
	if httpLn != nil {
		s.serveOn(wssproxy.NewServer(c.HTTPListen, s.httpHandler(), nil, s.logger), httpLn, false)
	}
	if adminLn != nil {
		srv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		s.serveOn(srv, adminLn, false)
	}
	if len(c.Domains) > 0 {
		got := s.certs.obtain(ctx, c, s.logger)
		s.obtained.Store(&got)
	}
	s.banner()
	return nil
}

// listen opens a TCP listener; keepAlive is the TCP keepalive period of
// the connections it accepts (0: Go's default, negative: off).
func (s *server) listen(flagName, addr string, keepAlive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		var hint string
		if errors.Is(err, syscall.EADDRINUSE) {
			hint = "; another process holds the port (ss -ltnp shows which), or pick another with " + flagName
		} else if errors.Is(err, syscall.EACCES) {
			hint = "; ports below 1024 need root or CAP_NET_BIND_SERVICE (see examples/basic/wssgate.service)"
		}
		return nil, fmt.Errorf("%s %s: %w%s", flagName, addr, errors.Unwrap(err), hint)
	}
	s.lns = append(s.lns, ln)
	return ln, nil
}

func (s *server) serveOn(srv *http.Server, ln net.Listener, tls bool) {
	s.servers = append(s.servers, srv)
	ln = wssproxy.NewListener(ln)
	go func() {
		var err error
		if tls {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
}

// httpHandler serves the plain HTTP listener: ACME HTTP-01 and a redirect
// to https.
func (s *server) httpHandler() http.Handler {
	if s.certs.acme != nil {
		return s.certs.acme.HTTPHandler(nil)
	}
	port := portOf(s.addrs.TLS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if port != 443 {
			host = net.JoinHostPort(host, fmt.Sprint(port))
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusFound)
	})
}

// closeAll releases what start built, after a failed start.
func (s *server) closeAll() {
	for _, srv := range s.servers {
		srv.Close()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	if s.gw != nil {
		s.gw.Close()
	}
	if s.history != nil {
		s.history.stop()
	}
}

// serve waits for ctx (then drains), a server error, or SIGHUP (reload).
func (s *server) serve(ctx context.Context, hup <-chan os.Signal) error {
	defer s.history.stop()
	for {
		select {
		case err := <-s.serveErr:
			s.logger.Error("serving failed", "err", err)
			s.closeAll()
			return err
		case <-hup:
			s.reload()
		case <-ctx.Done():
			return s.shutdown()
		}
	}
}

func (s *server) shutdown() error {
	drain := s.gw.current().cfg.Drain // -drain is reloadable
	s.logger.Info("shutting down", "drain", drain, "connections", s.gw.Conns())
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	errs = append(errs, s.gw.Shutdown(ctx))
	err := errors.Join(errs...)
	if errors.Is(err, context.DeadlineExceeded) {
		s.logger.Warn("drain timed out; remaining connections dropped")
		err = nil
	}
	s.gw.Close()
	return err
}

// reload re-reads the flags, the environment and the -config file, and
// applies certificates, limits, the upstream list and the method policy to
// new connections. Open connections keep going.
func (s *server) reload() {
	c, _, err := s.prog.parse(s.args, s.prog.getenv)
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		s.logger.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	c.Logger = s.logger
	if fixed := s.cfg.needsRestart(c); len(fixed) > 0 { // against the start: they never applied
		s.logger.Warn("reload: these settings changed but take a restart", "flags", fixed)
	}
	if err := s.certs.reload(); err != nil {
		s.logger.Error("reload: certificate files not reloaded; keeping the current pair", "err", err)
	}
	if err := s.gw.apply(c); err != nil {
		s.logger.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	s.logger.Info("reloaded", "upstream", c.Upstreams, "rate", c.Rate, "burst", c.Burst,
		"max_conns_per_client", c.MaxConnsPerClient, "max_conns", c.MaxConns, "max_conns_per_node", c.MaxConnsPerNode, "msg_rate", c.MsgRate,
		"connections_kept", s.gw.Conns())
}
