package redisstore_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

const ordersLog = "acme: this replica orders the certificate"

// acmeReplicas are gateway replicas sharing one Redis for ACME.
type acmeReplicas struct {
	stores    []*redisstore.Store
	acmes     []*certs.ACME
	logs      []*logBuffer
	tlsLns    []net.Listener
	httpLns   []net.Listener // HTTP-01 handlers
	httpAddrs []string
	hits      []atomic.Int64
}

func newACMEReplicas(t *testing.T, n int, redisAddr string) *acmeReplicas {
	t.Helper()
	r := &acmeReplicas{hits: make([]atomic.Int64, n)}
	for range n {
		st, log := newStore(t, redisAddr)
		r.stores, r.logs = append(r.stores, st), append(r.logs, log)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.tlsLns, r.httpLns = append(r.tlsLns, ln), append(r.httpLns, hl)
		r.httpAddrs = append(r.httpAddrs, hl.Addr().String())
	}
	return r
}

// start makes each replica's certs.ACME and serves TLS and HTTP-01.
func (r *acmeReplicas) start(t *testing.T, env *pebbleEnv, renewBefore time.Duration) {
	t.Helper()
	for i, st := range r.stores {
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
		r.acmes = append(r.acmes, a)
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
		go hs.Serve(tls.NewListener(r.tlsLns[i], certs.TLSConfig(a)))
		t.Cleanup(func() { hs.Close() })
		h01 := &http.Server{Handler: a.HTTPHandler(nil)}
		go h01.Serve(r.httpLns[i])
		t.Cleanup(func() { h01.Close() })
	}
}

// orderer returns the index of the replica that logged taking the
// order, or -1.
func (r *acmeReplicas) orderer() int {
	for i, l := range r.logs {
		if l.Count(ordersLog) > 0 {
			return i
		}
	}
	return -1
}

// forwarder listens on a loopback port for Pebble's validations and
// forwards each connection to addrs[i] of a replica that is not the
// one ordering, taking them in turn: every challenge is answered by a
// replica that did not create it.
func (r *acmeReplicas) forwarder(t *testing.T, addrs func() []string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for turn := 0; ; turn++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o := r.orderer()
			n := turn % len(r.tlsLns)
			if n == o {
				n = (n + 1) % len(r.tlsLns)
			}
			r.hits[n].Add(1)
			backend := addrs()[n]
			wg.Go(func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go io.Copy(b, c)
				io.Copy(c, b)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// handshakeAll connects to every replica at once and returns the
// serial each serves.
func (r *acmeReplicas) handshakeAll(t *testing.T, env *pebbleEnv) []string {
	t.Helper()
	serials := make([]string, len(r.tlsLns))
	var wg sync.WaitGroup
	for i, ln := range r.tlsLns {
		wg.Go(func() {
			c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{ServerName: "node.test", RootCAs: env.IssuedRoots},
			}}
			defer c.CloseIdleConnections()
			res, err := c.Get("https://" + ln.Addr().String() + "/")
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
		t.FailNow()
	}
	for i := range serials {
		if serials[i] != serials[0] {
			t.Fatalf("replicas serve different certificates: serials %v", serials)
		}
	}
	return serials
}

// checkChallenges checks that the orderer answered no challenge and the
// others answered some.
func (r *acmeReplicas) checkChallenges(t *testing.T) {
	t.Helper()
	o := r.orderer()
	var others int64
	for i := range r.hits {
		if i != o {
			others += r.hits[i].Load()
		}
	}
	if o < 0 || r.hits[o].Load() != 0 || others == 0 {
		t.Errorf("orderer %d; challenge connections per replica %d/%d/%d: want none at the orderer, some at the others",
			o, r.hits[0].Load(), r.hits[1].Load(), r.hits[2].Load())
	}
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
// with the CA and serve the same certificate; the TLS-ALPN-01 challenge
// is answered by replicas that did not order. When the certificate is
// due, exactly one replica renews it and all three serve the new one.
func TestReplicasOneCertificate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newACMEReplicas(t, 3, srv.Addr)
	tlsPort := r.forwarder(t, func() []string {
		var a []string
		for _, ln := range r.tlsLns {
			a = append(a, ln.Addr().String())
		}
		return a
	})
	// 30 s certificates renewed 22 s before expiry: autocert's timers
	// fire about 8 s after issuance, within 2.2 s of each other.
	const validity, renewBefore = 30 * time.Second, 22 * time.Second
	env := startPebble(t, tlsPort, freePort(t), validity)
	env.AddA(t, "node.test")
	r.start(t, env, renewBefore)

	serials := r.handshakeAll(t, env)
	issued := env.Orders()
	t.Logf("first issuance: %d order(s) at Pebble for 3 replicas; serial %s on all; replica %d ordered; TLS-ALPN-01 connections per replica %d/%d/%d",
		issued, serials[0], r.orderer(), r.hits[0].Load(), r.hits[1].Load(), r.hits[2].Load())
	if issued != 1 {
		t.Errorf("Pebble received %d orders at first issuance, want exactly 1", issued)
	}
	r.checkChallenges(t)
	if n := strings.Count(r.logs[0].String()+r.logs[1].String()+r.logs[2].String(), "another replica stored"); n != 2 {
		t.Errorf("%d replicas logged using the stored certificate, want the 2 that did not order", n)
	}

	// Renewal: wait until every replica serves a new certificate.
	deadline := time.Now().Add(90 * time.Second)
	for i, a := range r.acmes {
		for leafSerial(t, a) == serials[0] {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still serves %s", i, serials[0])
			}
			time.Sleep(50 * time.Millisecond) // autocert renews on its own timer
		}
	}
	renewed := []string{leafSerial(t, r.acmes[0]), leafSerial(t, r.acmes[1]), leafSerial(t, r.acmes[2])}
	orders := env.Orders()
	t.Logf("renewal: %d order(s) in all at Pebble; serials %v", orders, renewed)
	if renewed[0] != renewed[1] || renewed[1] != renewed[2] {
		t.Errorf("replicas serve different renewed certificates: %v", renewed)
	}
	if orders != 2 {
		t.Errorf("Pebble received %d orders after one renewal, want 2 (one renewal order)", orders)
	}
}

// HTTP-01 tokens are in Redis too: replicas that did not order answer
// the CA's HTTP requests.
func TestReplicasHTTP01(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newACMEReplicas(t, 3, srv.Addr)
	httpPort := r.forwarder(t, func() []string { return r.httpAddrs })
	// Nothing listens on the TLS-ALPN-01 port, so autocert's first order
	// fails and its second uses HTTP-01: two orders, as for a lone
	// replica (see the certs package's http-01 test).
	env := startPebble(t, freePort(t), httpPort, 0)
	env.AddA(t, "node.test")
	r.start(t, env, 0)

	serials := r.handshakeAll(t, env)
	orders := env.Orders()
	t.Logf("HTTP-01: %d order(s) at Pebble for 3 replicas; serial %s on all; replica %d ordered; HTTP-01 connections per replica %d/%d/%d",
		orders, serials[0], r.orderer(), r.hits[0].Load(), r.hits[1].Load(), r.hits[2].Load())
	if orders != 2 {
		t.Errorf("Pebble received %d orders, want 2 (a failed TLS-ALPN-01 one, then HTTP-01), all from one replica", orders)
	}
	r.checkChallenges(t)
}
