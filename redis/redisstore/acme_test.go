package redisstore_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

// roundRobin forwards each TCP connection it accepts to the next of
// backends and counts them per backend: Pebble validates through it, so
// any replica may answer a challenge.
func roundRobin(t *testing.T, backends []string) (port int, hits []atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = make([]atomic.Int64, len(backends))
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := i % len(backends)
			hits[n].Add(1)
			wg.Go(func() {
				defer c.Close()
				b, err := net.Dial("tcp", backends[n])
				if err != nil {
					return
				}
				defer b.Close()
				go io.Copy(b, c)
				io.Copy(c, b)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, hits
}

// leafSerial returns the serial of the certificate an ACME source
// serves now, without contacting anything but the source.
func leafSerial(t *testing.T, a *certs.ACME) string {
	t.Helper()
	c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "node.test",
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.String()
}

// Three replicas started together for one name place exactly one order
// with the CA and serve the same certificate; when it is due, exactly
// one replica renews it and all three serve the renewed one.
func TestReplicasOneCertificate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var lns []net.Listener
	var addrs []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns, addrs = append(lns, ln), append(addrs, ln.Addr().String())
	}
	tlsPort, hits := roundRobin(t, addrs)
	// 30 s certificates renewed 22 s before expiry: autocert's timers
	// fire about 8 s after issuance, within 2.2 s of each other.
	const validity, renewBefore = 30 * time.Second, 22 * time.Second
	env := startPebble(t, tlsPort, validity)
	env.AddA(t, "node.test")

	var acmes []*certs.ACME
	for i := range 3 {
		st, _ := newStore(t, srv.Addr)
		a := &certs.ACME{
			Domains:      []string{"node.test"},
			Email:        "ops@node.test",
			Cache:        &redisstore.CertCache{Store: st, RenewBefore: renewBefore, PollInterval: 50 * time.Millisecond},
			DirectoryURL: env.DirectoryURL,
			RootCAs:      env.DirRoots,
			RenewBefore:  renewBefore,
		}
		if err := a.Init(); err != nil {
			t.Fatal(err)
		}
		acmes = append(acmes, a)
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
		go hs.Serve(tls.NewListener(lns[i], certs.TLSConfig(a)))
		t.Cleanup(func() { hs.Close() })
	}

	// One client per replica, all at once: each handshake needs the
	// certificate that none has yet.
	serials := make([]string, 3)
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{ServerName: "node.test", RootCAs: env.IssuedRoots},
			}}
			defer c.CloseIdleConnections()
			res, err := c.Get("https://" + addr + "/")
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				return
			}
			res.Body.Close()
			serials[i] = res.TLS.PeerCertificates[0].SerialNumber.String()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if serials[0] != serials[1] || serials[1] != serials[2] {
		t.Errorf("replicas serve different certificates: serials %v", serials)
	}
	issued := env.Orders()
	t.Logf("first issuance: %d order(s) at Pebble for 3 replicas; serials %v; challenge connections per replica %d/%d/%d",
		issued, serials, hits[0].Load(), hits[1].Load(), hits[2].Load())
	if issued != 1 {
		t.Errorf("Pebble received %d orders at first issuance, want exactly 1", issued)
	}

	// Renewal: wait until every replica serves a new certificate.
	first := serials[0]
	deadline := time.Now().Add(90 * time.Second)
	for i, a := range acmes {
		for leafSerial(t, a) == first {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still serves %s at %v", i, first, time.Now())
			}
			time.Sleep(50 * time.Millisecond) // autocert renews on its own timer
		}
	}
	renewed := []string{leafSerial(t, acmes[0]), leafSerial(t, acmes[1]), leafSerial(t, acmes[2])}
	orders := env.Orders()
	t.Logf("renewal: %d order(s) in all at Pebble; serials %v", orders, renewed)
	if renewed[0] != renewed[1] || renewed[1] != renewed[2] {
		t.Errorf("replicas serve different renewed certificates: %v", renewed)
	}
	if orders != 2 {
		t.Errorf("Pebble received %d orders after one renewal, want 2 (one renewal order)", orders)
	}
}
