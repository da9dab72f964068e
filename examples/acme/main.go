// Command acme is the smallest embedding of certs.ACME: a wssproxy.Proxy
// served with a Let's Encrypt certificate.
//
//	go run ./examples/acme -domain node.example.com -email you@example.com
//
// It shows the three lines that matter to a program of your own: the ACME
// source, certs.TLSConfig (which adds TLS-ALPN-01 to the listener) and
// HTTPHandler on port 80 (HTTP-01 and a redirect to https). It has no
// limits, metrics or dashboard: to run a gateway, use examples/basic with
// -domain, which adds those, obtains the certificate before it serves and
// says why an order failed.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/internal/cliusage"
	"github.com/wssgate/wssgate/wssproxy"
)

func main() {
	cliusage.Exit("acme", run(os.Args[1:]))
}

func run(args []string) error {
	signal.Ignore(syscall.SIGHUP) // nothing to reload: certs.ACME renews by itself
	fs := flag.NewFlagSet("acme", flag.ContinueOnError)
	cliusage.Set(fs, "Command acme is the smallest program that serves a node as wss:// with a Let's Encrypt certificate through certs.ACME (for a gateway to run, use examples/basic -domain).",
		"go run ./examples/acme -domain node.example.com -email you@example.com")
	domain := fs.String("domain", "", "DNS name to get a certificate for (required)")
	email := fs.String("email", "", "contact address for the ACME account")
	dirURL := fs.String("acme-directory", "", "ACME directory URL (default Let's Encrypt production)")
	caFile := fs.String("acme-ca", "", "PEM of the CA that signs the directory's TLS certificate (private CAs such as Pebble)")
	listen := fs.String("listen", ":443", "address for wss:// and TLS-ALPN-01")
	httpListen := fs.String("http-listen", ":80", "address for HTTP-01 and the https redirect")
	upstream := fs.String("upstream", "ws://127.0.0.1:9944", "the node's ws:// URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *domain == "" {
		return errors.New("-domain is required: the DNS name to get a certificate for")
	}
	src := &certs.ACME{Domains: []string{*domain}, Email: *email, DirectoryURL: *dirURL}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		src.RootCAs = x509.NewCertPool()
		src.RootCAs.AppendCertsFromPEM(pem)
	}
	if err := src.Init(); err != nil {
		return err
	}
	proxy, err := wssproxy.New(*upstream, nil)
	if err != nil {
		return err
	}
	tlsSrv := wssproxy.NewServer(*listen, proxy, certs.TLSConfig(src), nil)
	httpSrv := wssproxy.NewServer(*httpListen, src.HTTPHandler(nil), nil, nil)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- tlsSrv.ServeTLS(wssproxy.NewListener(ln), "", "") }()
	go func() { errc <- httpSrv.ListenAndServe() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.Info("listening; the certificate is ordered at the first handshake", "url", "wss://"+*domain, "upstream", *upstream)
	select {
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, tlsSrv.Shutdown(sctx), httpSrv.Shutdown(sctx), proxy.Shutdown(sctx))
}
