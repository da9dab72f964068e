package rpctest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// These tests run the e2e/ JavaScript clients straight against the fake
// node. They skip when the npm packages are missing, unless WSSGATE_E2E=1.

func TestPolkadotJS(t *testing.T) {
	t.Parallel()
	rpctest.RequireE2E(t)

	t.Run("ApiPromise", func(t *testing.T) {
		t.Parallel()
		n := start(t, &rpctest.Options{BlockInterval: 200 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		res, err := rpctest.RunPolkadot(ctx, n.URL(), "HEADS=2", "CALLS=author_rotateKeys,system_peers", "EXPECT_CALLS=ok")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ApiPromise sent %v", n.Seen())

		genesis := blockHash(t, n, 0)
		if diff := cmp.Diff(rpctest.Health{}, res.Health); diff != "" {
			t.Errorf("health (-want +got):\n%s", diff)
		}
		got := []any{res.Chain, res.SpecName, res.SpecVersion, res.MetadataVersion, res.GenesisHash, res.HashMatches, len(res.Warnings)}
		want := []any{"Development", "node", 268, 15, genesis, true, 0}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("chain, spec, spec version, metadata version, genesis, hash matches, warnings (-want +got):\n%s\nwarnings: %q", diff, res.Warnings)
		}
		if len(res.Heads) != 2 || res.Heads[1].Number != res.Heads[0].Number+1 {
			t.Errorf("heads = %+v, want 2 consecutive", res.Heads)
		}
		if out := res.Calls["author_rotateKeys"]; !out.OK {
			t.Errorf("author_rotateKeys = %+v", out)
		}
		seen := n.Seen()
		// ApiPromise fetches metadata with state_call (runtime API
		// Metadata_metadata_at_version), not state_getMetadata, and
		// subscribes with the alias chain_subscribeNewHead.
		for _, m := range []string{"rpc_methods", "state_call", "state_subscribeRuntimeVersion", "chain_subscribeNewHead", "author_rotateKeys", "system_peers"} {
			if !slices.Contains(seen, m) {
				t.Errorf("node never saw %s", m)
			}
		}
	})
	t.Run("EXPECT_CALLS=error fails when a call succeeds", func(t *testing.T) {
		t.Parallel()
		n := start(t, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		_, err := rpctest.RunPolkadot(ctx, n.URL(), "HEADS=0", "CALLS=author_rotateKeys", "EXPECT_CALLS=error")
		if err == nil || !strings.Contains(err.Error(), "author_rotateKeys succeeded, expected a JSON-RPC error") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestBrowser(t *testing.T) {
	t.Parallel()
	rpctest.RequireChromium(t)
	n := start(t, &rpctest.Options{BlockInterval: 200 * time.Millisecond})
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>wssgate e2e</title>"))
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	res, err := rpctest.RunBrowser(ctx, n.URL(), "HEADS=2", "PAGE_URL="+page.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browser %s", res.Browser)

	replies := map[string]string{}
	for m, r := range res.Replies {
		replies[m] = string(r)
	}
	want := map[string]string{
		"system_chain":       `{"jsonrpc":"2.0","id":1,"result":"Development"}`,
		"system_health":      `{"jsonrpc":"2.0","id":2,"result":{"peers":0,"isSyncing":false,"shouldHavePeers":false}}`,
		"chain_getBlockHash": `{"jsonrpc":"2.0","id":4,"result":"` + blockHash(t, n, 0) + `"}`,
	}
	delete(replies, "chain_getHeader")
	if diff := cmp.Diff(want, replies); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	if len(res.Batch) != 2 || len(res.Heads) != 2 || res.Heads[1] != res.Heads[0]+1 {
		t.Errorf("batch = %s, heads = %v", res.Batch, res.Heads)
	}
	if res.Close == nil || res.Close.Code != 1000 {
		t.Errorf("close = %+v, want 1000", res.Close)
	}
	// The browser's handshake is the first; blockHash dialed after it.
	if got := n.Headers()[0].Get("Origin"); got != page.URL {
		t.Errorf("handshake Origin = %q, want %q", got, page.URL)
	}
}

// blockHash asks the node over a new WebSocket for the hash of block num.
func blockHash(t *testing.T, n *rpctest.Node, num int) string {
	t.Helper()
	c := dial(t, n)
	return unmarshal[string](t, c.call("chain_getBlockHash", num))
}

// TestTLS runs both clients against the node serving a self-signed
// certificate, trusted through NODE_EXTRA_CA_CERTS and SPKI: the setup a
// gateway test needs.
func TestTLS(t *testing.T) {
	t.Parallel()
	rpctest.RequireChromium(t)
	cert, pemFile := selfSigned(t)
	n := start(t, &rpctest.Options{
		BlockInterval: 200 * time.Millisecond,
		TLSConfig:     &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	if !strings.HasPrefix(n.URL(), "wss://") {
		t.Fatalf("URL = %s", n.URL())
	}
	t.Run("polkadot.js", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		res, err := rpctest.RunPolkadot(ctx, n.URL(), "HEADS=1", "NODE_EXTRA_CA_CERTS="+pemFile)
		if err != nil {
			t.Fatal(err)
		}
		if res.Chain != "Development" || len(res.Heads) != 1 {
			t.Errorf("chain %q, heads %v", res.Chain, res.Heads)
		}
	})
	t.Run("browser", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		res, err := rpctest.RunBrowser(ctx, n.URL(), "HEADS=1", "SPKI="+rpctest.SPKI(cert.Leaf))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Heads) != 1 {
			t.Errorf("heads %v", res.Heads)
		}
	})
	t.Run("browser without trust", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		_, err := rpctest.RunBrowser(ctx, n.URL(), "HEADS=1")
		if err == nil || !strings.Contains(err.Error(), "WebSocket to "+n.URL()+" failed") {
			t.Errorf("without SPKI: err = %v, want the WebSocket to fail", err)
		}
	})
}

// selfSigned makes a P-256 certificate for 127.0.0.1 and writes its PEM.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rpctest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, file
}
