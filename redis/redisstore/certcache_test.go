package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

// certPEM returns a key and self-signed certificate valid from
// notBefore to notAfter, PEM-encoded as autocert stores them.
func certPEM(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node.test"},
		DNSNames: []string{"node.test"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	return append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
}

func newCertCaches(t *testing.T, n int) []*redisstore.CertCache {
	t.Helper()
	srv := redistest.Start(t)
	var cs []*redisstore.CertCache
	for range n {
		st, _ := newStore(t, srv.Addr)
		cs = append(cs, &redisstore.CertCache{Store: st, RenewBefore: time.Hour, PollInterval: 5 * time.Millisecond})
	}
	return cs
}

func TestCertCacheSharesAccountKeyAndTokens(t *testing.T) {
	t.Parallel()
	cs := newCertCaches(t, 2)
	ctx := context.Background()
	k1, err := cs[0].Get(ctx, "acme_account+key")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := cs[1].Get(ctx, "acme_account+key")
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("replicas got different account keys (err %v)", err)
	}
	if err := cs[0].Put(ctx, "tok+http-01", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if v, err := cs[1].Get(ctx, "tok+http-01"); err != nil || string(v) != "value" {
		t.Errorf("HTTP-01 token on the other replica: %q, %v", v, err)
	}
	cs[0].Delete(ctx, "tok+http-01")
	if _, err := cs[1].Get(ctx, "tok+http-01"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("deleted token: err = %v, want ErrCacheMiss", err)
	}
}

// Of two replicas missing a certificate, one is told it is missing
// (and orders); the other waits and gets what the first stores.
func TestCertCacheOneOrders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stored []byte // before the race; nil: none
	}{
		{"first issuance", nil},
		{"renewal", certPEM(t, time.Now().Add(-24*time.Hour), time.Now().Add(30*time.Minute))}, // within RenewBefore 1h
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs := newCertCaches(t, 2)
			ctx := context.Background()
			if tc.stored != nil {
				if err := cs[0].Put(ctx, "node.test", tc.stored); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cs[0].Get(ctx, "node.test"); !errors.Is(err, autocert.ErrCacheMiss) {
				t.Fatalf("first replica: err = %v, want ErrCacheMiss (it orders)", err)
			}
			// Again on the holder (autocert retrying): still its turn.
			if _, err := cs[0].Get(ctx, "node.test"); !errors.Is(err, autocert.ErrCacheMiss) {
				t.Fatalf("first replica again: err = %v, want ErrCacheMiss", err)
			}
			got := make(chan []byte, 1)
			go func() {
				d, err := cs[1].Get(ctx, "node.test")
				if err != nil {
					t.Errorf("waiting replica: %v", err)
				}
				got <- d
			}()
			fresh := certPEM(t, time.Now(), time.Now().Add(90*24*time.Hour))
			if err := cs[0].Put(ctx, "node.test", fresh); err != nil {
				t.Fatal(err)
			}
			if d := <-got; string(d) != string(fresh) {
				t.Error("waiting replica did not get the stored certificate")
			}
			// Not due: no lock, no wait.
			if d, err := cs[1].Get(ctx, "node.test"); err != nil || string(d) != string(fresh) {
				t.Errorf("Get of a fresh certificate: %v", err)
			}
		})
	}
}

// A holder that dies without storing loses the lock after LockTTL.
func TestCertCacheLockExpires(t *testing.T) {
	t.Parallel()
	cs := newCertCaches(t, 2)
	cs[0].LockTTL = 200 * time.Millisecond
	ctx := context.Background()
	if _, err := cs[0].Get(ctx, "node.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := cs[1].Get(ctx, "node.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("after the holder's lock expired: err = %v, want ErrCacheMiss (its turn)", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("second replica got the lock after %v, before the first's expired", d)
	}
}
