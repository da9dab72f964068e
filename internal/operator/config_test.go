package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/ratelimit"
)

// runOnce runs the program with args and returns its error, stdout and
// logs. It is for runs that end at start.
func runOnce(t *testing.T, p *Program, args ...string) (out, logs string, err error) {
	t.Helper()
	var o, l bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a start that succeeds shuts down at once
	err = p.Run(ctx, args, &o, &l, nil)
	return o.String(), l.String(), err
}

// TestBadConfigAtStart: every bad value fails at start, in one log line
// in the one log format, naming the flag, with a suggestion where there
// is one.
func TestBadConfigAtStart(t *testing.T) {
	t.Parallel()
	cert := filepath.Join(t.TempDir(), "nope", "cert.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-upstream", "127.0.0.1:9944"}, `did you mean ws://127.0.0.1:9944?`},
		{[]string{"-upstream", "ws://127.0.0.1:99999"}, `port \"99999\" is not in 1-65535`},
		{[]string{"-upstream", "ws://127.0.0.1:0"}, `port \"0\" is not in 1-65535`},
		{[]string{"-upstream", "ftp://x:1"}, `the scheme must be ws:// or wss://`},
		{[]string{"-upstream", "ws://a:1,localhost:9944"}, `did you mean ws://localhost:9944?`},
		{[]string{"-cert", cert, "-key", cert}, `-cert ` + cert},
		{[]string{"-cert", cert}, `-cert and -key go together`},
		{[]string{"-email", "a@example.com"}, `-email needs -domain`},
		{[]string{"-acme-directory", "https://x/dir"}, `-acme-directory needs -domain`},
		{[]string{"-domain", "1.2.3.4"}, `-domain: \"1.2.3.4\" is an IP address`},
		{[]string{"-domain", "node.example.com", "-acme-directory", "http://x/dir", "-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-admin-listen", ""}, `-acme-directory: \"http://x/dir\" is not an https URL`},
		{[]string{"-domain", "node.example.com", "-email", "nope", "-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-admin-listen", ""}, `-email: \"nope\"`},
		{[]string{"-rate", "-1"}, `-rate must not be negative`},
		{[]string{"-deflate-level", "0"}, `-deflate-level 0: must be 1 (fastest) to 9`},
		{[]string{"-deflate-level", "10"}, `-deflate-level 10: must be 1 (fastest) to 9`},
		{[]string{"-deflate-threshold", "-1"}, `-deflate-threshold must not be negative`},
		{[]string{"-node-warm-conns", "-1"}, `-node-warm-conns must not be negative`},
		{[]string{"-node-warm-conns", "2", "-share"}, `-node-warm-conns needs splice mode`},
		{[]string{"-listen", "8443"}, `-listen: \"8443\" is not host:port`},
		{[]string{"-nope"}, `flag provided but not defined: -nope`},
		{[]string{"extra"}, `unexpected arguments`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-self-signed-dir", "", "-admin-listen", "", "-listen", "127.0.0.1:0"}, tc.args...)
			_, logs, err := runOnce(t, &Program{}, args...)
			if err == nil {
				t.Fatalf("Run(%q) = nil, want an error", tc.args)
			}
			if n := strings.Count(logs, "\n"); n != 1 || !strings.HasPrefix(logs, "time=") || !strings.Contains(logs, "level=ERROR") {
				t.Errorf("want one ERROR line in the log format, got %d lines:\n%s", n, logs)
			}
			if !strings.Contains(logs, tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, logs)
			}
		})
	}
}

// TestBindErrorFirst: a taken port is reported before anything about the
// nodes, and nothing else is logged.
func TestBindErrorFirst(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, logs, err := runOnce(t, &Program{}, "-listen", ln.Addr().String(), "-upstream", "ws://127.0.0.1:9", "-self-signed-dir", "", "-admin-listen", "")
	if err == nil || !strings.Contains(logs, "-listen "+ln.Addr().String()+": bind: address already in use") {
		t.Fatalf("err %v, logs:\n%s", err, logs)
	}
	if strings.Count(logs, "\n") != 1 || strings.Contains(logs, "node") {
		t.Errorf("want only the bind error, got:\n%s", logs)
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	p := &Program{Flags: func(fs *flag.FlagSet) { fs.String("redis", "", "Redis address for shared limits") }}
	out, logs, err := runOnce(t, p, "-h")
	if !errors.Is(err, flag.ErrHelp) || logs != "" {
		t.Fatalf("-h: %v, logs %q", err, logs)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasSuffix(lines[0], ".") || !strings.HasPrefix(lines[0], "wssgate serves") || !strings.Contains(out, "Example:\n  go run ./examples/basic") {
		t.Errorf("-h does not start with a sentence and an example:\n%s", out)
	}
	for _, want := range []string{"-listen string   [WSSGATE_LISTEN]", "-upstream value   [WSSGATE_UPSTREAM]", "[WSSGATE_MAX_CONNS_PER_CLIENT]", "-redis string   [WSSGATE_REDIS]", "-domain value   [WSSGATE_DOMAIN]"} {
		if !strings.Contains(out, want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	out, _, err = runOnce(t, p, "-version")
	if err != nil || !strings.HasPrefix(out, "wssgate ") || !strings.Contains(out, "go1.") {
		t.Errorf("-version: %v %q", err, out)
	}
}

// TestEnvAndConfigFile: flags come from the command line, else the
// environment, else the -config file.
func TestEnvAndConfigFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "wssgate.conf")
	os.WriteFile(file, []byte("# comment\nWSSGATE_RATE=7\nWSSGATE_BURST=\"9\"\nWSSGATE_MAX_CONNS=3\nWSSGATE_UPSTREAM=ws://file:1\n"), 0o600)
	env := map[string]string{"WSSGATE_CONFIG": file, "WSSGATE_UPSTREAM": "ws://env:1, ws://env:2", "WSSGATE_MAX_CONNS": "4"}
	p := &Program{Getenv: func(k string) string { return env[k] }}
	c, _, err := p.parse([]string{"-max-conns", "5"}, p.getenv)
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 7 || c.Burst != 9 || c.MaxConns != 5 || strings.Join(c.Upstreams, " ") != "ws://env:1 ws://env:2" {
		t.Errorf("rate %v burst %v max-conns %v upstreams %v", c.Rate, c.Burst, c.MaxConns, c.Upstreams)
	}
	env["WSSGATE_RATE"] = "x"
	if _, _, err := p.parse(nil, p.getenv); err == nil || !strings.Contains(err.Error(), `WSSGATE_RATE="x"`) {
		t.Errorf("bad env value: %v", err)
	}
	delete(env, "WSSGATE_RATE")
	os.WriteFile(file, []byte("WSSGATE_NOPE=1\n"), 0o600)
	if _, _, err := p.parse(nil, p.getenv); err == nil || !strings.Contains(err.Error(), "wssgate.conf:1: unknown setting WSSGATE_NOPE") {
		t.Errorf("bad file line: %v", err)
	}
}

// TestBanner: the banner uses a name the certificate covers, gives the
// Apps link, the curl line and the trust hint, logs the self-signed
// certificate once, and says how to start a node when none answers.
func TestBanner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", dir,
		"-hosts", "node.example.com", "-upstream", "ws://127.0.0.1:9")
	logs := g.logs.String()
	port := g.TLS[strings.LastIndexByte(g.TLS, ':')+1:]
	for _, want := range []string{
		"wss=wss://node.example.com:" + port,
		"url=\"https://polkadot.js.org/apps/?rpc=wss%3A%2F%2Fnode.example.com%3A" + port + "\"",
		"curl=\"curl --cacert " + dir + "/cert.pem",
		"msg=\"trust the self-signed certificate\" sha256=",
		"go run ./examples/testnode",
		"--rpc-methods safe",
		"ws://127.0.0.1:9: connection refused",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("banner lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "self-signed certificate created"); n != 1 || strings.Contains(logs, `msg="self-signed certificate"`) {
		t.Errorf("self-signed certificate logged %d times:\n%s", n, logs)
	}

	node := startNode(t)
	g2 := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "", "-upstream", node.URL())
	if l := g2.logs.String(); strings.Contains(l, "no node answers") || !strings.Contains(l, "curl=\"curl -k ") || !strings.Contains(l, "wss=wss://127.0.0.1:") {
		t.Errorf("with a node up:\n%s", l)
	}
}

// TestHooks: a binary in another module adds a flag (with its environment
// variable) and replaces the in-memory limiters from the parsed
// configuration, keeping the rest of the operator.
func TestHooks(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	var shared string
	var seen *Config
	p := &Program{
		Name:   "wssgate-redis",
		Getenv: func(k string) string { return map[string]string{"WSSGATE_REDIS": "127.0.0.1:6379"}[k] },
		Flags:  func(fs *flag.FlagSet) { fs.StringVar(&shared, "redis", "", "Redis address for shared limits") },
		Limiters: func(c *Config) (*Limiters, error) {
			seen = c
			return &Limiters{Conn: &ratelimit.Conns{PerKey: 1}}, nil
		},
	}
	g := startGateway(t, p, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "", "-upstream", node.URL())
	if shared != "127.0.0.1:6379" || seen == nil || seen.Upstreams[0] != node.URL() {
		t.Fatalf("hook saw redis %q, config %+v", shared, seen)
	}
	if !strings.Contains(g.logs.String(), `msg="wssgate-redis serving"`) {
		t.Errorf("program name not in the banner:\n%s", g.logs)
	}
	insecure := &tls.Config{InsecureSkipVerify: true}
	if _, _, err := dialWSS(t, g.TLS, insecure); err != nil {
		t.Fatal(err)
	}
	if _, res, err := dialWSS(t, g.TLS, insecure); err == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second connection under the hook's cap of 1: %v", err)
	}
}

// TestBannerDNS: a node name that does not resolve is reported as DNS,
// not as a refused connection.
func TestBannerDNS(t *testing.T) {
	t.Parallel()
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
		"-upstream", "ws://nosuchhost.invalid:9944")
	if l := g.logs.String(); !strings.Contains(l, "ws://nosuchhost.invalid:9944: DNS: nosuchhost.invalid") || strings.Contains(l, "no node answers yet; start one and the gateway picks it up\" err=\"ws://nosuchhost.invalid:9944: connection refused") {
		t.Errorf("banner does not name DNS as the cause:\n%s", l)
	}
}

// TestMaxConnsPerNode: -max-conns-per-node (default 100, a node's own
// --rpc-max-connections) answers 503 + Retry-After before dialing.
func TestMaxConnsPerNode(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p := &Program{Getenv: func(string) string { return "" }}
	c, _, err := p.parse(nil, p.getenv)
	if err != nil || c.MaxConnsPerNode != 100 {
		t.Fatalf("default -max-conns-per-node %d (%v), want 100", c.MaxConnsPerNode, err)
	}
	// No health checks: their own connection to the node (head
	// subscriptions) would change node.Conns() while the test counts.
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
		"-upstream", node.URL(), "-max-conns-per-node", "1", "-health-interval", "-1s")
	insecure := &tls.Config{InsecureSkipVerify: true}
	if _, _, err := dialWSS(t, g.TLS, insecure); err != nil {
		t.Fatal(err)
	}
	before := node.Conns()
	_, res, err := dialWSS(t, g.TLS, insecure)
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("connection over the per-node cap: %v %v, want 503 with Retry-After", err, res)
	}
	if node.Conns() != before {
		t.Errorf("the node was dialed for a refused connection: %d -> %d", before, node.Conns())
	}
}

// TestNodeWarmConns: -node-warm-conns keeps that many connections on the
// node ahead of clients, and a client is served on one: the node sees no
// handshake with its X-Forwarded-For.
func TestNodeWarmConns(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
		"-upstream", node.URL(), "-node-warm-conns", "2", "-health-interval", "-1s")
	waitNodeConns := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for node.Conns() != want {
			if time.Now().After(deadline) {
				t.Fatalf("node holds %d connections, want %d", node.Conns(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitNodeConns(2)
	c, _, err := dialWSS(t, g.TLS, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if reply := call(t, c, `{"jsonrpc":"2.0","id":1,"method":"system_chain","params":[]}`); !strings.Contains(reply, "Development") {
		t.Fatalf("reply %s", reply)
	}
	waitNodeConns(3) // the client's and two warm
	for _, h := range node.Headers() {
		if h.Get("X-Forwarded-For") != "" {
			t.Errorf("the node saw a handshake with X-Forwarded-For %q: the client was not served warm", h.Get("X-Forwarded-For"))
		}
	}
}

// TestAllowStorageScans: state_getStorageSize is refused by the default
// policy, naming the flag that allows it, and reaches the node with it.
func TestAllowStorageScans(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	const req = `{"jsonrpc":"2.0","id":1,"method":"state_getStorageSize","params":["0x"]}`
	for _, allow := range []bool{false, true} {
		args := []string{"-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "", "-upstream", node.URL()}
		if allow {
			args = append(args, "-allow-storage-scans")
		}
		g := startGateway(t, &Program{}, args...)
		c, _, err := dialWSS(t, g.TLS, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		reply := call(t, c, req)
		if refused := strings.Contains(reply, "-allow-storage-scans"); refused == allow {
			t.Errorf("-allow-storage-scans=%v: %s", allow, reply)
		}
	}
	if seen := node.Seen(); !slices.Contains(seen, "state_getStorageSize") {
		t.Errorf("node saw %v; want state_getStorageSize once allowed", seen)
	}
}

// TestShare: with -share, five clients' head subscriptions are one on the
// node, over the node connections -share-conns asks for.
func TestShare(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	g := startGateway(t, &Program{}, "-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
		"-upstream", node.URL(), "-share", "-share-conns", "2", "-health-interval", "-1s")
	for i := range 5 {
		c, _, err := dialWSS(t, g.TLS, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if reply := call(t, c, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"chain_subscribeNewHeads","params":[]}`, i)); !strings.Contains(reply, `"result"`) {
			t.Fatalf("subscribe: %s", reply)
		}
	}
	subs := 0
	for _, m := range node.Seen() {
		if m == "chain_subscribeNewHeads" {
			subs++
		}
	}
	if subs != 1 || node.Conns() != 2 {
		t.Errorf("node saw %d subscriptions on %d connections, want 1 on 2", subs, node.Conns())
	}
}

// TestDeflateFlags: the gateway answers a client's permessage-deflate
// offer by default (and with the other -deflate flags set), and not with
// -deflate=false; calls work either way.
func TestDeflateFlags(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{[]string{"-deflate=false"}, ""},
		{[]string{"-deflate-threshold", "0", "-deflate-level", "9"}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	} {
		args := append([]string{"-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "", "-upstream", node.URL()}, tc.flags...)
		g := startGateway(t, &Program{}, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		c, res, err := websocket.Dial(ctx, "wss://"+g.TLS, &websocket.DialOptions{HTTPClient: client,
			CompressionMode: websocket.CompressionNoContextTakeover})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		if got := res.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
			t.Errorf("%q: answered %q, want %q", tc.flags, got, tc.want)
		}
		if reply := call(t, c, `{"jsonrpc":"2.0","id":1,"method":"system_chain","params":[]}`); !strings.Contains(reply, `"Development"`) {
			t.Errorf("%q: reply %s", tc.flags, reply)
		}
	}
}

// startNode starts a fake Substrate node for a test.
func startNode(t *testing.T) *rpctest.Node {
	t.Helper()
	node, err := rpctest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}
