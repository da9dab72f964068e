package operator

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/pebbletest"
)

// TestACMEPebble is the acceptance check: the operator binary with
// -domain against Pebble gets a Pebble-issued certificate through
// TLS-ALPN-01 and, with that port unreachable for the CA, through HTTP-01;
// limits and metrics are on, raw-IP clients get the self-signed pair, and
// SIGHUP reloads without stopping it or dropping the open connection.
func TestACMEPebble(t *testing.T) {
	node := startNode(t)
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			tlsPort, httpPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
			validateTLS := tlsPort
			if challenge == "http-01" {
				validateTLS = pebbletest.FreePort(t) // nothing listens: TLS-ALPN-01 fails
			}
			env := pebbletest.Start(t, pebbletest.Options{TLSPort: validateTLS, HTTPPort: httpPort})
			env.AddA(t, "node.test")
			dir := t.TempDir()
			g := startGateway(t, &Program{},
				"-listen", fmt.Sprintf("127.0.0.1:%d", tlsPort), "-http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
				"-admin-listen", "127.0.0.1:0", "-upstream", node.URL(),
				"-domain", "node.test", "-email", "ops@node.test",
				"-acme-directory", env.DirectoryURL, "-acme-ca", env.DirCAFile,
				"-acme-cache", filepath.Join(dir, "acme"), "-self-signed-dir", filepath.Join(dir, "self"),
				"-max-conns-per-client", "1", "-rate", "50", "-burst", "50")
			logs := g.logs.String()
			if !strings.Contains(logs, `msg="certificate obtained" domain=node.test issuer="Pebble`) {
				t.Fatalf("no one-line outcome for the order:\n%s", logs)
			}
			if i, j := strings.Index(logs, "certificate obtained"), strings.Index(logs, "wssgate serving"); i > j {
				t.Errorf("serving logged before the certificate was obtained:\n%s", logs)
			}
			if !strings.Contains(logs, "wss=wss://node.test:") || !strings.Contains(logs, "rpc=wss%3A%2F%2Fnode.test%3A") {
				t.Errorf("banner does not use the certificate's name:\n%s", logs)
			}

			conf := &tls.Config{ServerName: "node.test", RootCAs: env.IssuedRoots}
			c, _, err := dialWSS(t, g.TLS, conf)
			if err != nil {
				t.Fatalf("wss with the Pebble-issued certificate: %v", err)
			}
			if r := call(t, c, `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}`); !strings.Contains(r, `"result"`) {
				t.Fatalf("system_chain: %s", r)
			}
			// Limits: a second connection from this client is over -max-conns-per-client 1.
			if _, res, err := dialWSS(t, g.TLS, conf); err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
				t.Errorf("second connection: %v %v, want 429", err, res)
			}
			// A raw-IP client (no SNI) gets the self-signed pair.
			raw, err := tls.Dial("tcp", g.TLS, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			leaf := raw.ConnectionState().PeerCertificates[0]
			raw.Close()
			if leaf.Issuer.CommonName == "" || strings.Contains(leaf.Issuer.CommonName, "Pebble") || len(leaf.IPAddresses) == 0 {
				t.Errorf("raw-IP client got issuer %q, IPs %v; want the self-signed pair", leaf.Issuer.CommonName, leaf.IPAddresses)
			}
			// Metrics.
			_, metrics := get(t, nil, "http://"+g.Admin+"/metrics")
			for _, want := range []string{`wssgate_handshakes_total{upstream="` + strings.TrimPrefix(node.URL(), "ws://") + `",outcome="ok"} 1`, `wssgate_refusals_total{reason="conns_per_client"} 1`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s:\n%s", want, metrics)
				}
			}
			// HTTP-01 listener redirects browsers to https.
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest("GET", "http://"+g.HTTP+"/x?y=1", nil)
			req.Host = "node.test"
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || loc != fmt.Sprintf("https://node.test:%d/x?y=1", tlsPort) {
				t.Errorf("http redirect: %d %q", res.StatusCode, loc)
			}

			// SIGHUP: reloads, keeps running and keeps the connection.
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			g.logs.waitFor(t, `msg=reloaded`, 1)
			if r := call(t, c, `{"id":2,"jsonrpc":"2.0","method":"system_health","params":[]}`); !strings.Contains(r, `"peers"`) {
				t.Errorf("after SIGHUP, the open connection: %s", r)
			}
			c.Close(websocket.StatusNormalClosure, "")
			if err := g.stop(); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

// TestACMEFailureReason: when the CA cannot validate (nothing answers on
// the challenge ports), the start reports the CA's reason and what to
// check in one line, and still serves the self-signed pair.
func TestACMEFailureReason(t *testing.T) {
	env := pebbletest.Start(t, pebbletest.Options{TLSPort: pebbletest.FreePort(t), HTTPPort: pebbletest.FreePort(t)})
	env.AddA(t, "node.test")
	dir := t.TempDir()
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-admin-listen", "",
		"-upstream", "ws://127.0.0.1:9", "-domain", "node.test", "-acme-directory", env.DirectoryURL, "-acme-ca", env.DirCAFile,
		"-acme-cache", filepath.Join(dir, "acme"), "-self-signed-dir", filepath.Join(dir, "self"))
	logs := g.logs.String()
	var line string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, "certificate not obtained") {
			if line != "" {
				t.Errorf("outcome logged twice:\n%s", logs)
			}
			line = l
		}
	}
	for _, want := range []string{"domain=node.test", "reason=", "connection refused", "check=\"reachability:"} {
		if !strings.Contains(line, want) {
			t.Errorf("outcome line lacks %q: %s\nall logs:\n%s", want, line, logs)
		}
	}
	if strings.Contains(logs, "acme: challenge failed") {
		t.Errorf("the ACME source's own lines were not folded into the outcome:\n%s", logs)
	}
	if !strings.Contains(logs, "trust the self-signed certificate") {
		t.Errorf("no self-signed trust hint while the ACME name is missing:\n%s", logs)
	}
}
