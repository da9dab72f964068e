// Command acme serves a node's ws:// JSON-RPC port as wss:// with a
// certificate from an ACME CA (Let's Encrypt by default):
//
//	go run ./examples/acme -domain node.example.com -email you@example.com
//
// It answers TLS-ALPN-01 on -listen (:443) and HTTP-01 on -http-listen (:80),
// which also redirects plain HTTP to https. Both ports must be reachable
// from the internet under the domain for the CA to validate it.
//
// To try it against a private CA such as Pebble, pass -acme-directory with
// its directory URL and -acme-ca with the PEM of the CA that signed the
// directory's TLS certificate.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/wssproxy"
)

// domainList is a repeatable, comma-separable -domain flag.
type domainList []string

func (d *domainList) String() string { return strings.Join(*d, ",") }

func (d *domainList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*d = append(*d, s)
		}
	}
	return nil
}

type config struct {
	domains              domainList
	email, cache, dirURL string
	caFile               string
	listen, httpListen   string
	upstream             string
}

func parseFlags() config {
	var c config
	flag.Var(&c.domains, "domain", "domain to get a certificate for (repeatable or comma-separated)")
	flag.StringVar(&c.email, "email", "", "contact email for the ACME account")
	flag.StringVar(&c.cache, "acme-cache", certs.DefaultACMECacheDir, "directory for the ACME account key and certificates")
	flag.StringVar(&c.dirURL, "acme-directory", "", "ACME directory URL (default Let's Encrypt production)")
	flag.StringVar(&c.caFile, "acme-ca", "", "PEM file of the CA to trust for the ACME directory (for private CAs)")
	flag.StringVar(&c.listen, "listen", ":443", "address for wss:// (and TLS-ALPN-01)")
	flag.StringVar(&c.httpListen, "http-listen", ":80", "address for HTTP-01 and the https redirect; empty disables")
	flag.StringVar(&c.upstream, "upstream", "ws://127.0.0.1:9944", "the node's WebSocket JSON-RPC URL")
	flag.Parse()
	return c
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "acme:", err)
		os.Exit(1)
	}
}

func run() error {
	c := parseFlags()
	log := slog.Default()
	src, err := newACME(c, log)
	if err != nil {
		return err
	}
	proxy, err := wssproxy.New(c.upstream, &wssproxy.Options{Logger: log})
	if err != nil {
		return err
	}
	defer proxy.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	servers := []*http.Server{wssproxy.NewServer(c.listen, proxy, certs.TLSConfig(src), log)}
	if c.httpListen != "" {
		servers = append(servers, wssproxy.NewServer(c.httpListen, src.HTTPHandler(nil), nil, log))
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			if i == 0 {
				errc <- srv.ListenAndServeTLS("", "")
			} else {
				errc <- srv.ListenAndServe()
			}
		}()
	}
	log.Info("serving", "url", "wss://"+c.domains[0]+portSuffix(c.listen), "upstream", c.upstream, "http", c.httpListen)

	select {
	case err = <-errc: // a listener failed, e.g. port in use
	case <-ctx.Done():
		log.Info("shutting down")
	}
	return errors.Join(err, shutdown(proxy, servers))
}

// newACME builds the certificate source from the flags.
func newACME(c config, log *slog.Logger) (*certs.ACME, error) {
	src := &certs.ACME{
		Domains:      c.domains,
		Email:        c.email,
		CacheDir:     c.cache,
		DirectoryURL: c.dirURL,
		HTTPSPort:    portNumber(c.listen),
		Logger:       log,
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		src.RootCAs = x509.NewCertPool()
		if !src.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-acme-ca %s: no PEM certificates", c.caFile)
		}
	}
	if err := src.Init(); err != nil {
		return nil, err
	}
	return src, nil
}

// shutdown stops accepting, then drains the proxied WebSockets for up to
// 10 s before closing what is left.
func shutdown(proxy *wssproxy.Proxy, servers []*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := proxy.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// portNumber returns the port of a listen address, 0 if unknown.
func portNumber(addr string) int {
	var port int
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		fmt.Sscanf(addr[i+1:], "%d", &port)
	}
	return port
}

// portSuffix returns ":port" for a non-443 listen address, else "".
func portSuffix(addr string) string {
	if p := portNumber(addr); p != 0 && p != 443 {
		return fmt.Sprintf(":%d", p)
	}
	return ""
}
