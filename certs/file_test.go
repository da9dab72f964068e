package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssgate/wssgate/certs"
)

var serials atomic.Int64

// makePair returns a self-signed PEM pair for "node.test" valid in
// [notBefore, notAfter], its serial, and a pool trusting it.
func makePair(t *testing.T, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, serial int64, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial = serials.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node.test"},
		DNSNames: []string{"node.test"}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), serial, pool
}

func validPair(t *testing.T) (certPEM, keyPEM []byte, serial int64, pool *x509.CertPool) {
	now := time.Now()
	return makePair(t, now.Add(-time.Hour), now.Add(24*time.Hour))
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := dialTLS(t, addr, &tls.Config{ServerName: "node.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestFileRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c1, k1, s1, pool1 := validPair(t)
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)

	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	log, logs := testLogger()
	f := &certs.File{CertFile: certFile, KeyFile: keyFile, PollInterval: time.Minute, Logger: log}
	certs.SetFileNow(f, func() time.Time { return *clock.Load() })
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	addr := echoServer(t, certs.TLSConfig(f))
	old, err := dialTLS(t, addr, &tls.Config{ServerName: "node.test", RootCAs: pool1})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, old, "before")
	advance := func(d time.Duration) { n := clock.Load().Add(d); clock.Store(&n) }

	t.Run("Reload installs a new pair", func(t *testing.T) {
		c2, k2, s2, _ := validPair(t)
		writeFile(t, certFile, c2)
		writeFile(t, keyFile, k2)
		if got := servedSerial(t, addr); got != s1 {
			t.Errorf("before Reload and poll interval: serial %d, want old %d", got, s1)
		}
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := servedSerial(t, addr); got != s2 {
			t.Errorf("after Reload: serial %d, want %d", got, s2)
		}
		roundTrip(t, old, "old connection still works")
	})

	t.Run("poller installs a new pair", func(t *testing.T) {
		c3, k3, s3, _ := validPair(t)
		writeFile(t, certFile, c3)
		writeFile(t, keyFile, k3)
		advance(time.Minute)
		if got := servedSerial(t, addr); got != s3 {
			t.Errorf("after poll interval: serial %d, want %d", got, s3)
		}
		roundTrip(t, old, "old connection still works")
	})

	t.Run("half-written pair keeps the old one", func(t *testing.T) {
		before := f.Certificate().Leaf.SerialNumber.Int64()
		c4, k4, s4, _ := validPair(t)
		writeFile(t, certFile, c4) // cert renewed, key not yet
		advance(time.Minute)
		if got := servedSerial(t, addr); got != before {
			t.Errorf("mismatched pair served: serial %d, want old %d", got, before)
		}
		if err := f.Reload(); err == nil || !strings.Contains(err.Error(), keyFile) {
			t.Errorf("Reload of mismatched pair: err = %v, want one naming %s", err, keyFile)
		}
		if !strings.Contains(logs.String(), "certificate reload failed") {
			t.Errorf("failed reload not logged:\n%s", logs)
		}
		writeFile(t, keyFile, k4) // renewal completes
		advance(time.Minute)
		if got := servedSerial(t, addr); got != s4 {
			t.Errorf("completed pair not picked up: serial %d, want %d", got, s4)
		}
		roundTrip(t, old, "old connection still works")
	})
}

// TestFileCertbotLayout swaps live/ symlinks to a new archive pair the way
// certbot renews, with identical modification times.
func TestFileCertbotLayout(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	archive, live := filepath.Join(root, "archive", "x"), filepath.Join(root, "live", "x")
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	put := func(gen string, certPEM, keyPEM []byte) {
		for name, data := range map[string][]byte{"fullchain" + gen + ".pem": certPEM, "privkey" + gen + ".pem": keyPEM} {
			p := filepath.Join(archive, name)
			writeFile(t, p, data)
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		for link, target := range map[string]string{"fullchain.pem": "fullchain" + gen + ".pem", "privkey.pem": "privkey" + gen + ".pem"} {
			tmp := filepath.Join(live, link+".new")
			if err := os.Symlink(filepath.Join("..", "..", "archive", "x", target), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(live, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
	c1, k1, s1, _ := validPair(t)
	put("1", c1, k1)
	f, err := certs.NewFile(filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Certificate().Leaf.SerialNumber.Int64(); got != s1 {
		t.Fatalf("serial %d, want %d", got, s1)
	}
	c2, k2, s2, _ := validPair(t)
	put("2", c2, k2)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.Certificate().Leaf.SerialNumber.Int64(); got != s2 {
		t.Errorf("after symlink swap: serial %d, want %d", got, s2)
	}
}

func TestNewFileErrors(t *testing.T) {
	t.Parallel()
	now := time.Now()
	good, goodKey, _, _ := validPair(t)
	_, otherKey, _, _ := validPair(t)
	expired, expiredKey, _, _ := makePair(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	future, futureKey, _, _ := makePair(t, now.Add(24*time.Hour), now.Add(48*time.Hour))
	tests := []struct {
		name      string
		cert, key []byte
		wantFile  string // "cert" or "key"
		want      string
	}{
		{"expired", expired, expiredKey, "cert", "certificate expired at"},
		{"not yet valid", future, futureKey, "cert", "certificate not valid before"},
		{"mismatched key", good, otherKey, "key", "private key does not match"},
		{"no certificate", []byte("junk"), goodKey, "cert", "no CERTIFICATE block"},
		{"key in cert file", append(good, goodKey...), goodKey, "cert", `unexpected "PRIVATE KEY" block`},
		{"no key", good, []byte("junk"), "key", "no PRIVATE KEY block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			files := map[string]string{"cert": filepath.Join(dir, "c.pem"), "key": filepath.Join(dir, "k.pem")}
			writeFile(t, files["cert"], tt.cert)
			writeFile(t, files["key"], tt.key)
			_, err := certs.NewFile(files["cert"], files["key"])
			if err == nil {
				t.Fatal("NewFile succeeded")
			}
			prefix := "certs: " + files[tt.wantFile] + ": "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("err = %q, want prefix %q and %q", msg, prefix, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := certs.NewFile(filepath.Join(t.TempDir(), "nope.pem"), "k.pem")
		if err == nil || !strings.Contains(err.Error(), "nope.pem") {
			t.Errorf("err = %v, want one naming nope.pem", err)
		}
	})
}
