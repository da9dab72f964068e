package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/acme/autocert"

	"github.com/wssgate/wssgate/certs"
)

// countingTransport counts every request the ACME client makes.
type countingTransport struct {
	next   http.RoundTripper
	n      atomic.Int64
	orders atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	if strings.HasSuffix(r.URL.Path, "/order-plz") {
		c.orders.Add(1)
	}
	return c.next.RoundTrip(r)
}

// newPebbleACME returns an ACME source for "node.test" against env.
func newPebbleACME(t *testing.T, env *pebbleEnv, cache autocert.Cache) (*certs.ACME, *countingTransport, *syncBuffer) {
	t.Helper()
	env.AddA(t, "node.test")
	log, buf := testLogger()
	if cache == nil {
		cache = autocert.DirCache(t.TempDir())
	}
	a := &certs.ACME{
		Domains:      []string{"node.test"},
		Email:        "ops@node.test",
		Cache:        cache,
		DirectoryURL: env.DirectoryURL,
		RootCAs:      env.DirRoots,
		Logger:       log,
	}
	ct := new(countingTransport)
	certs.SetACMETransportWrapper(a, func(rt http.RoundTripper) http.RoundTripper {
		ct.next = rt
		return ct
	})
	if err := a.Init(); err != nil {
		t.Fatal(err)
	}
	return a, ct, buf
}

func verifiedLeaf(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := dialTLS(t, addr, &tls.Config{ServerName: "node.test", RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake verified against Pebble's root: %v", err)
	}
	roundTrip(t, c, "ping")
	return c.ConnectionState().PeerCertificates[0]
}

func TestACMEPebble(t *testing.T) {
	t.Parallel()

	t.Run("tls-alpn-01", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		env := startPebble(t, pebbleOpts{TLSPort: portOf(ln), HTTPPort: freePort(t)})
		a, ct, _ := newPebbleACME(t, env, nil)
		cfg := certs.TLSConfig(a)
		if diff := cmp.Diff([]string{"http/1.1", "acme-tls/1"}, cfg.NextProtos); diff != "" {
			t.Errorf("NextProtos (-want +got):\n%s", diff)
		}
		serveEcho(t, ln, cfg)

		leaf := verifiedLeaf(t, ln.Addr().String(), env.IssuedRoots)
		if diff := cmp.Diff([]string{"node.test"}, leaf.DNSNames); diff != "" {
			t.Errorf("DNSNames (-want +got):\n%s", diff)
		}
		if got := ct.orders.Load(); got != 1 {
			t.Errorf("orders = %d, want 1", got)
		}

		t.Run("outside policy", func(t *testing.T) {
			before := ct.n.Load()
			_, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test"})
			if err == nil || !strings.Contains(err.Error(), `"other.test" is not in ACME.Domains`) {
				t.Errorf("GetCertificate(other.test) err = %v", err)
			}
			_, err = dialTLS(t, ln.Addr().String(), &tls.Config{ServerName: "other.test", RootCAs: env.IssuedRoots})
			if err == nil {
				t.Error("handshake for other.test succeeded")
			}
			if got := ct.n.Load() - before; got != 0 {
				t.Errorf("ACME requests for a name outside the policy = %d, want 0", got)
			}
		})
	})

	t.Run("http-01", func(t *testing.T) {
		t.Parallel()
		httpLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// Nothing listens on TLSPort, so TLS-ALPN-01 fails and autocert
		// falls back to HTTP-01 on a new order.
		env := startPebble(t, pebbleOpts{HTTPPort: portOf(httpLn), TLSPort: freePort(t)})
		a, ct, logs := newPebbleACME(t, env, nil)
		var challenges atomic.Int64
		h := a.HTTPHandler(nil)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				challenges.Add(1)
			}
			h.ServeHTTP(w, r)
		})}
		go srv.Serve(httpLn)
		t.Cleanup(func() { srv.Close() })
		addr := echoServer(t, certs.TLSConfig(a))

		leaf := verifiedLeaf(t, addr, env.IssuedRoots)
		if diff := cmp.Diff([]string{"node.test"}, leaf.DNSNames); diff != "" {
			t.Errorf("DNSNames (-want +got):\n%s", diff)
		}
		if challenges.Load() == 0 {
			t.Error("Pebble never fetched an HTTP-01 challenge")
		}
		if got := ct.orders.Load(); got != 2 {
			t.Errorf("orders = %d, want 2 (tls-alpn-01 failed, then http-01)", got)
		}
		if l := logs.String(); !strings.Contains(l, "challenge=tls-alpn-01") || !strings.Contains(l, "acme: challenge failed") {
			t.Errorf("failed TLS-ALPN-01 challenge not logged with its problem:\n%s", l)
		}
	})

	t.Run("renewal", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// 12 s certificates renewed 9 s before expiry: autocert renews
		// about 3 s after issuance.
		env := startPebble(t, pebbleOpts{TLSPort: portOf(ln), HTTPPort: freePort(t), Validity: 12})
		cache := &notifyCache{Cache: autocert.DirCache(t.TempDir()), puts: make(chan *x509.Certificate, 16)}
		a, _, _ := newPebbleACME(t, env, cache)
		a.RenewBefore = 9 * time.Second // before the first GetCertificate
		serveEcho(t, ln, certs.TLSConfig(a))

		first := verifiedLeaf(t, ln.Addr().String(), env.IssuedRoots)
		renewed := cache.waitPut(t, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 })
		// autocert stores the renewed cert just before it starts serving it.
		waitServing(t, a, renewed.SerialNumber)
		second := verifiedLeaf(t, ln.Addr().String(), env.IssuedRoots)
		if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Errorf("serial unchanged after renewal: %v", first.SerialNumber)
		}
	})
}

// notifyCache reports every certificate autocert stores.
type notifyCache struct {
	autocert.Cache
	puts chan *x509.Certificate
}

func (c *notifyCache) Put(ctx context.Context, key string, data []byte) error {
	err := c.Cache.Put(ctx, key, data)
	if key == "node.test" {
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				if leaf, err := x509.ParseCertificate(b.Bytes); err == nil {
					c.puts <- leaf
				}
				break
			}
		}
	}
	return err
}

func (c *notifyCache) waitPut(t *testing.T, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case leaf := <-c.puts:
			if ok(leaf) {
				return leaf
			}
		case <-timeout:
			t.Fatal("no renewed certificate stored within 60s")
		}
	}
}

// waitServing polls until a serves the given serial. autocert swaps its
// state right after the cache write, so this spans microseconds.
func waitServing(t *testing.T, a *certs.ACME, serial *big.Int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "node.test",
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
		if err == nil && c.Leaf.SerialNumber.Cmp(serial) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed serial %v not served within 10s (err %v)", serial, err)
		}
		time.Sleep(time.Millisecond)
	}
}
