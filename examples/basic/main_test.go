package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/operator"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/wssproxy"
)

// gateway runs the example's run() on a free port in front of node and
// returns its address, the client TLS config trusting its self-signed
// certificate, and a stop function that returns run's error.
func gateway(t *testing.T, node *rpctest.Node, extra ...string) (string, *tls.Config, func() error) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan operator.Addrs, 1)
	done := make(chan error, 1)
	args := append([]string{"-listen", "127.0.0.1:0", "-upstream", node.URL(), "-self-signed-dir", dir, "-admin-listen", ""}, extra...)
	var logs syncBuffer
	go func() { done <- run(ctx, args, &logs, &logs, ready) }()
	var addr string
	select {
	case a := <-ready:
		addr = a.TLS
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not start")
	}
	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	stopped := false
	stop := func() error {
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("run did not return after cancel")
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	if !strings.Contains(logs.String(), "sha256=") {
		t.Errorf("start-up logs do not show the certificate fingerprint:\n%s", logs.String())
	}
	return addr, &tls.Config{RootCAs: pool}, stop
}

// connect starts a test node and the gateway in front of it, and opens a
// wss:// connection trusting the gateway's printed certificate. It returns
// the node, the gateway's address, an HTTPS client trusting it, the
// connection, and the gateway's stop function.
func connect(t *testing.T) (*rpctest.Node, string, *http.Client, *websocket.Conn, func() error) {
	t.Helper()
	node, err := rpctest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	addr, tlsConf, stop := gateway(t, node)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return node, addr, client, c, stop
}

// TestBasic is the acceptance check: a wss client trusting the
// printed certificate sends requests and receives subscriptions, an HTTPS
// POST is answered, and a shutdown sends the client 1001.
func TestBasic(t *testing.T) {
	node, addr, client, c, stop := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call(t, ctx, c, `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}`, `"result"`)
	call(t, ctx, c, `{"id":2,"jsonrpc":"2.0","method":"chain_subscribeNewHeads","params":[]}`, `"result"`)
	node.Advance()
	_, msg, err := c.Read(ctx)
	if err != nil || !bytes.Contains(msg, []byte(`"method":"chain_newHead"`)) {
		t.Fatalf("subscription: %s %v", msg, err)
	}

	resp, err := client.Post("https://"+addr+"/", "application/json",
		strings.NewReader(`{"id":3,"jsonrpc":"2.0","method":"system_health","params":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"peers"`)) {
		t.Errorf("HTTPS POST: %d %s", resp.StatusCode, body)
	}

	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	for err == nil { // skip notifications still in flight
		_, _, err = c.Read(ctx)
	}
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client saw %v on shutdown, want 1001", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("run returned %v after shutdown", err)
	}
}

func call(t *testing.T, ctx context.Context, c *websocket.Conn, req, want string) []byte {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(msg, &v); err != nil || !bytes.Contains(msg, []byte(want)) {
		t.Fatalf("reply to %s: %s (want %s)", req, msg, want)
	}
	return msg
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-cert", "x.pem"}, {"extra"}, {"-upstream", "ftp://x"}} {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "-self-signed-dir", ""), &out, &out, nil)
		if err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestBasicRefusesUnsafe is the safety issue's acceptance check: the
// default gateway refuses every method of the preset with a JSON-RPC error,
// over WebSocket, in a batch and over HTTP POST, and the node sees none.
func TestBasicRefusesUnsafe(t *testing.T) {
	node, addr, client, c, _ := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var batch []string
	for i, m := range wssproxy.UnsafeMethods {
		req := fmt.Sprintf(`{"id":%d,"jsonrpc":"2.0","method":%q,"params":[]}`, i, m)
		batch = append(batch, req)
		reply := call(t, ctx, c, req, `"error"`)
		if !bytes.Contains(reply, []byte(m)) {
			t.Errorf("refusal of %s does not name it: %s", m, reply)
		}
	}
	all := "[" + strings.Join(batch, ",") + "]"
	reply := call(t, ctx, c, all, `"error"`)
	if n := bytes.Count(reply, []byte(`"code":-32601`)); n != len(batch) {
		t.Errorf("batch of %d unsafe calls: %d refusals in %s", len(batch), n, reply)
	}
	// HTTP POST: the batch and a few singles (the default 2 r/s burst 5
	// request limit also applies to POSTs).
	for _, body := range append([]string{all}, batch[:3]...) {
		resp, err := client.Post("https://"+addr+"/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"code":-32601`)) {
			t.Errorf("POST %.60s: %d %s", body, resp.StatusCode, b)
		}
	}
	// The gateway's own health checks are expected: each batch holds one
	// system_health and one system_peers, its probe of the node's
	// --rpc-methods mode; any other system_peers came from the client.
	probes := 0
	for _, m := range node.Seen() {
		switch {
		case m == "system_health":
			probes++
		case m == "system_peers":
			probes--
		case slices.Contains(wssproxy.UnsafeMethods, m):
			t.Errorf("node saw %s; want none of the unsafe calls", m)
		}
	}
	if probes != 0 {
		t.Errorf("node saw %d more system_health than system_peers calls, want as many (only the gateway's probes)", probes)
	}
}

// TestBasicStrictHealth: with -strict-health, once the only node is
// stalled (its head stands still past -stall-timeout), /wssgate/ready says
// why and new connections are refused with 503 and Retry-After.
func TestBasicStrictHealth(t *testing.T) {
	node, err := rpctest.Start(nil) // no blocks: its head stays at #0
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	addr, tlsConf, _ := gateway(t, node, "-strict-health", "-stall-timeout", "1ms", "-health-interval", "20ms")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	var ready struct {
		Ready, Serving bool
		Nodes          []wssproxy.NodeStatus
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := client.Get("https://" + addr + "/wssgate/ready")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready still %d with a stalled node: %+v", resp.StatusCode, ready)
		}
	}
	if ready.Ready || ready.Serving || len(ready.Nodes) != 1 || ready.Nodes[0].State != wssproxy.StateStalled ||
		!strings.HasPrefix(ready.Nodes[0].Reason, "stalled at #0 for ") || ready.Nodes[0].UnsafeMethods != wssproxy.UnsafeServed {
		t.Errorf("ready %+v, want not serving, the node stalled at #0 and serving unsafe methods", ready)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client})
	if err == nil || resp == nil {
		t.Fatalf("dial with every node stalled and -strict-health: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "stalled at #0") {
		t.Errorf("refusal %d Retry-After %q %q, want 503, 1 and the reason", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
