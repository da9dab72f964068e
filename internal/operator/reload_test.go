package operator

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/metrics"
)

// TestReloadKeepsConnections: SIGHUP re-reads the -config file and applies
// the new upstream list and limits to new connections, while the open
// connection stays on its node.
func TestReloadKeepsConnections(t *testing.T) {
	var nodes [2]*rpctest.Node
	for i := range nodes {
		n, err := rpctest.Start(nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	conf := filepath.Join(t.TempDir(), "wssgate.conf")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("WSSGATE_UPSTREAM=" + nodes[0].URL() + "\nWSSGATE_MAX_CONNS_PER_CLIENT=1\n")
	g := startGateway(t, &Program{}, "-config", conf, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "")
	insecure := &tls.Config{InsecureSkipVerify: true}
	c1, _, err := dialWSS(t, g.TLS, insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, res, err := dialWSS(t, g.TLS, insecure); err == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second connection before the reload: %v, want 429", err)
	}

	write("WSSGATE_UPSTREAM=" + nodes[1].URL() + "\nWSSGATE_MAX_CONNS_PER_CLIENT=3\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.logs.waitFor(t, "msg=reloaded", 1)
	if l := g.logs.String(); !strings.Contains(l, "upstream=["+nodes[1].URL()+"]") || !strings.Contains(l, "max_conns_per_client=3") {
		t.Errorf("reload line does not show the new settings:\n%s", l)
	}

	if r := call(t, c1, `{"id":1,"jsonrpc":"2.0","method":"system_name","params":[]}`); !strings.Contains(r, `"result"`) {
		t.Fatalf("open connection after the reload: %s", r)
	}
	c2, _, err := dialWSS(t, g.TLS, insecure)
	if err != nil {
		t.Fatalf("new connection under the raised limit: %v", err)
	}
	if r := call(t, c2, `{"id":2,"jsonrpc":"2.0","method":"system_chain","params":[]}`); !strings.Contains(r, `"result"`) {
		t.Fatalf("new connection: %s", r)
	}
	if !slices.Contains(nodes[0].Seen(), "system_name") || slices.Contains(nodes[0].Seen(), "system_chain") {
		t.Errorf("old node saw %v; want the open connection's call only", nodes[0].Seen())
	}
	if !slices.Contains(nodes[1].Seen(), "system_chain") || slices.Contains(nodes[1].Seen(), "system_name") {
		t.Errorf("new node saw %v; want the new connection's call only", nodes[1].Seen())
	}

	// A bad file keeps the running configuration.
	write("WSSGATE_UPSTREAM=127.0.0.1:9944\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	g.logs.waitFor(t, "reload failed; keeping the running configuration", 1)
	if !strings.Contains(g.logs.String(), "did you mean ws://127.0.0.1:9944?") {
		t.Errorf("bad reload not explained:\n%s", g.logs)
	}
	c3, _, err := dialWSS(t, g.TLS, insecure)
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	call(t, c3, `{"id":3,"jsonrpc":"2.0","method":"system_health","params":[]}`)
}

// TestReloadCertificate: SIGHUP re-reads -cert/-key; new handshakes get
// the new pair, the open connection stays.
func TestReloadCertificate(t *testing.T) {
	node := startNode(t)
	dir := t.TempDir()
	var fps [2]string
	for i, host := range []string{"a.example", "b.example"} {
		s := &certs.SelfSigned{Hosts: []string{host}, Dir: filepath.Join(dir, host), Logger: slog.New(slog.DiscardHandler)}
		if err := s.Init(); err != nil {
			t.Fatal(err)
		}
		fps[i] = s.Fingerprint()
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(host string) {
		for _, f := range []string{"cert.pem", "key.pem"} {
			b, err := os.ReadFile(filepath.Join(dir, host, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	served := func(addr string) string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return certs.Fingerprint(c.ConnectionState().PeerCertificates[0].Raw)
	}
	install("a.example")
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-cert", certFile, "-key", keyFile, "-upstream", node.URL())
	if got := served(g.TLS); got != fps[0] {
		t.Fatalf("serving %s, want the first pair", got)
	}
	c, _, err := dialWSS(t, g.TLS, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	install("b.example")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	g.logs.waitFor(t, "msg=reloaded", 1)
	if got := served(g.TLS); got != fps[1] {
		t.Errorf("after SIGHUP serving %s, want the new pair %s", got, fps[1])
	}
	if r := call(t, c, `{"id":1,"jsonrpc":"2.0","method":"system_health","params":[]}`); !strings.Contains(r, `"peers"`) {
		t.Errorf("open connection after the certificate reload: %s", r)
	}
}

// TestApplyKeepsProxy: a reload that changes only limits keeps the proxy
// (its per-node counts stay exact) and swaps the limiters behind it; a new
// upstream list gets a new proxy.
func TestApplyKeepsProxy(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) *Config {
		p := &Program{Getenv: func(string) string { return "" }}
		c, _, err := p.parse(append(args, "-health-interval", "-1s"), p.getenv)
		if err == nil {
			err = c.validate()
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	g := newGateway(&Program{}, slog.New(slog.DiscardHandler), metrics.NewCounters())
	defer g.Close()
	if err := g.apply(parse("-rate", "1", "-burst", "1")); err != nil {
		t.Fatal(err)
	}
	first := g.current().proxy
	if ok, _ := g.request.Allow("k"); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := g.request.Allow("k"); ok {
		t.Fatal("second request allowed at burst 1")
	}
	if err := g.apply(parse("-rate", "0")); err != nil {
		t.Fatal(err)
	}
	if g.current().proxy != first {
		t.Error("a limits-only reload built a new proxy")
	}
	if ok, _ := g.request.Allow("k"); !ok {
		t.Error("-rate 0 after the reload still limits")
	}
	if err := g.apply(parse("-upstream", "ws://127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	if g.current().proxy == first {
		t.Error("a new upstream list kept the old proxy")
	}
}
