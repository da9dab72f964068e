// Command bootnode serves wss:// in front of a node's libp2p WebSocket
// listener, so browser light clients (smoldot) can reach a bootnode:
//
//	go run ./examples/bootnode -upstream ws://127.0.0.1:30333
//
// It is a pure splice: libp2p speaks binary frames, not JSON-RPC, so the
// method policy and message limits are off and every message passes
// byte for byte. Connection limits stay on (50 per client by default).
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/internal/cliusage"
	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/wssproxy"
	"golang.org/x/time/rate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	cliusage.Exit("bootnode", err)
}

func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("bootnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cliusage.Set(fs, "Command bootnode serves wss:// in front of a node's libp2p WebSocket listener, so that browser light clients (smoldot) can reach a bootnode.",
		"go run ./examples/bootnode -upstream ws://127.0.0.1:30333 -listen :30334")
	listen := fs.String("listen", ":30334", "address to serve wss:// on")
	upstream := fs.String("upstream", "ws://127.0.0.1:30333", "the node's libp2p ws:// listener")
	hosts := fs.String("hosts", strings.Join(certs.DefaultSelfSignedHosts, ","), "names and IPs for the self-signed certificate")
	certDir := fs.String("self-signed-dir", "wssgate-cert", "directory keeping the self-signed pair (empty: in memory)")
	certFile := fs.String("cert", "", "PEM certificate chain (with -key) instead of a self-signed one")
	keyFile := fs.String("key", "", "PEM private key for -cert")
	perClient := fs.Int("max-conns-per-client", 50, "open connections per client (0: no limit)")
	total := fs.Int("max-conns", 0, "open connections in total (0: no limit)")
	rateFlag := fs.Float64("rate", 2, "handshakes per second per client (0: no limit)")
	burst := fs.Int("burst", 5, "burst for -rate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *perClient < 0 || *total < 0 || *rateFlag < 0 {
		return errors.New("limits must not be negative")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	var src certs.Source
	if *certFile != "" {
		f, err := certs.NewFile(*certFile, *keyFile)
		if err != nil {
			return err
		}
		src = f
	} else {
		s := &certs.SelfSigned{Hosts: strings.Split(*hosts, ","), Dir: *certDir, Logger: logger}
		if err := s.Init(); err != nil {
			return err
		}
		src = s
	}
	opts := &wssproxy.Options{
		Policy:         wssproxy.AllowAll(), // libp2p frames are not JSON-RPC
		HealthInterval: -1,                  // no JSON-RPC health endpoint on a libp2p port
		// libp2p negotiates no WebSocket extension, and its frames are
		// encrypted: deflate would cost CPU and save nothing.
		Deflate: &wssproxy.DeflateOptions{Disabled: true},
		Logger:  logger,
	}
	if *perClient > 0 || *total > 0 {
		opts.ConnLimit = &ratelimit.Conns{PerKey: *perClient, Total: *total}
	}
	if *rateFlag > 0 {
		opts.RequestLimit = ratelimit.NewBuckets(rate.Limit(*rateFlag), max(*burst, 1))
	}
	p, err := wssproxy.New(*upstream, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		p.Close()
		return err
	}
	srv := wssproxy.NewServer(*listen, p, certs.TLSConfig(src), logger)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(wssproxy.NewListener(ln), "", "") }()
	logger.Info("bootnode gateway serving", "wss", "wss://"+ln.Addr().String(), "upstream", *upstream)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		p.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(srv.Shutdown(sctx), p.Shutdown(sctx))
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
