package operator

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wssgate/wssgate/internal/rpctest"
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
