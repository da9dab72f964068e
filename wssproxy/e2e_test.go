package wssproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// These tests run real clients (e2e/polkadot.mjs: @polkadot/api's
// ApiPromise; e2e/browser.mjs: a WebSocket in headless Chromium) through
// the gateway over wss://, as a user does. They skip when the npm packages
// or Chromium are missing, unless WSSGATE_E2E=1.

// e2eOptions are a production setup: the default policy and realistic
// per-connection limits.
func e2eOptions(t *testing.T) *Options {
	return &Options{
		Policy:           DefaultPolicy(),
		MessageRate:      200,
		MessageBurst:     1000,
		MaxSubscriptions: 1024,
		Logger:           testLogger(t),
		// Health checks have their own tests; here the gateway's head
		// subscriptions would be one more connection and handshake on
		// the node than the client's.
		HealthInterval: -1,
	}
}

// e2eNode starts a fake node that makes a block every 200 ms.
func e2eNode(t *testing.T) *rpctest.Node {
	t.Helper()
	n, err := rpctest.Start(&rpctest.Options{BlockInterval: 200 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// tlsGateway serves p over TLS on loopback with a self-signed certificate
// for 127.0.0.1, as NewServer does for users. It returns the wss:// URL,
// the certificate and a PEM file of it for NODE_EXTRA_CA_CERTS.
func tlsGateway(t *testing.T, p *Proxy) (url string, leaf *x509.Certificate, pemFile string) {
	t.Helper()
	return tlsGatewayOn(t, p, nil)
}

// tlsGatewayOn is tlsGateway with the listener passed through wrap, if
// not nil.
func tlsGatewayOn(t *testing.T, p *Proxy, wrap func(net.Listener) net.Listener) (url string, leaf *x509.Certificate, pemFile string) {
	t.Helper()
	src, err := certs.NewSelfSigned("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	der := src.Certificate().Certificate[0]
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	pemFile = filepath.Join(t.TempDir(), "gateway.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	srv := NewServer(ln.Addr().String(), p, certs.TLSConfig(src), testLogger(t))
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(NewListener(ln), "", "") }()
	t.Cleanup(func() {
		p.Close()
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return "wss://" + ln.Addr().String(), leaf, pemFile
}

// nodeCall makes one JSON-RPC call straight to the node.
func nodeCall(t *testing.T, n *rpctest.Node, method string, params ...any) json.RawMessage {
	t.Helper()
	ctx := testCtx(t)
	c := dial(t, n.URL(), nil)
	defer c.Close(websocket.StatusNormalClosure, "")
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": append([]any{}, params...)})
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, ctx, c)
	if r.Error != nil {
		t.Fatalf("%s: %+v", method, r.Error)
	}
	return r.Result
}

func genesisHash(t *testing.T, n *rpctest.Node) string {
	t.Helper()
	var h string
	if err := json.Unmarshal(nodeCall(t, n, "chain_getBlockHash", 0), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// checkPolkadot checks what polkadot.mjs saw of the fake node's chain
// through the gateway, with author_rotateKeys refused.
func checkPolkadot(t *testing.T, res *rpctest.PolkadotResult, genesis string) {
	t.Helper()
	// polkadot.js logs each failed call with console.error ("RPC-CORE:
	// rotateKeys(): ..."); that one is expected, any other is not.
	var refusedLogs, others []string
	for _, w := range res.Warnings {
		if strings.Contains(w, "RPC-CORE: rotateKeys(): ") && strings.Contains(w, "-32601: wssproxy: method author_rotateKeys is not allowed") {
			refusedLogs = append(refusedLogs, w)
		} else {
			others = append(others, w)
		}
	}
	got := []any{res.Chain, res.SpecName, res.MetadataVersion, res.GenesisHash, res.HashMatches, len(refusedLogs), len(others)}
	want := []any{"Development", "node", 15, genesis, true, 1, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chain, spec, metadata version, genesis, hash matches, refused-call logs, other warnings (-want +got):\n%s\nwarnings: %q", diff, res.Warnings)
	}
	if len(res.Heads) < 2 || res.Heads[1].Number != res.Heads[0].Number+1 {
		t.Errorf("heads = %+v, want 2 consecutive", res.Heads)
	}
	out, ok := res.Calls["author_rotateKeys"]
	if !ok || out.OK || out.Code != -32601 || !strings.Contains(out.Message, "author_rotateKeys") || !strings.Contains(out.Message, "not allowed") {
		t.Errorf("author_rotateKeys = %+v, want the gateway's -32601 naming it", out)
	}
}

func runPolkadot(t *testing.T, url, pemFile string) *rpctest.PolkadotResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := rpctest.RunPolkadot(ctx, url, "NODE_EXTRA_CA_CERTS="+pemFile, "HEADS=2",
		"CALLS=author_rotateKeys", "EXPECT_CALLS=error")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("polkadot.js run took %d ms", res.ElapsedMs)
	return res
}

// TestE2EPolkadotJS: ApiPromise connects through the gateway over wss://,
// reads the chain, decodes metadata v15, follows new heads, and is refused
// an unsafe method, which never reaches the node.
func TestE2EPolkadotJS(t *testing.T) {
	t.Parallel()
	rpctest.RequireE2E(t)
	node := e2eNode(t)
	p, err := New(node.URL(), e2eOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	url, _, pemFile := tlsGateway(t, p)
	res := runPolkadot(t, url, pemFile)
	checkPolkadot(t, res, genesisHash(t, node))
	if res.URL != url {
		t.Errorf("ran against %s, want the gateway %s", res.URL, url)
	}
	seen := node.Seen()
	if slices.Contains(seen, "author_rotateKeys") {
		t.Error("author_rotateKeys reached the node")
	}
	for _, m := range []string{"rpc_methods", "state_call", "chain_subscribeNewHead"} {
		if !slices.Contains(seen, m) {
			t.Errorf("node never saw %s", m)
		}
	}
	h := node.Headers()[0] // the gateway's handshake for polkadot.js
	if h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("node saw X-Forwarded-Proto %q, X-Forwarded-For %q; want https from 127.0.0.1",
			h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-For"))
	}
}

// TestE2EBrowser: a WebSocket in Chromium, from a web page's origin, makes
// calls, a batch and a subscription through the gateway over wss://, and
// its close reaches the gateway cleanly.
func TestE2EBrowser(t *testing.T) {
	t.Parallel()
	rpctest.RequireChromium(t)
	node := e2eNode(t)
	p, err := New(node.URL(), e2eOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	url, leaf, _ := tlsGateway(t, p)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>wssgate e2e</title>"))
	}))
	t.Cleanup(page.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := rpctest.RunBrowser(ctx, url, "SPKI="+rpctest.SPKI(leaf), "HEADS=2", "PAGE_URL="+page.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium %s took %d ms", res.Browser, res.ElapsedMs)

	replies := map[string]string{}
	for m, r := range res.Replies {
		replies[m] = string(r)
	}
	delete(replies, "chain_getHeader") // depends on the block of the moment
	want := map[string]string{
		"system_chain":       `{"jsonrpc":"2.0","id":1,"result":"Development"}`,
		"system_health":      `{"jsonrpc":"2.0","id":2,"result":{"peers":0,"isSyncing":false,"shouldHavePeers":false}}`,
		"chain_getBlockHash": `{"jsonrpc":"2.0","id":4,"result":"` + genesisHash(t, node) + `"}`,
	}
	if diff := cmp.Diff(want, replies); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	if len(res.Batch) != 2 || !strings.Contains(string(res.Batch[1]), `"result":["browser"]`) {
		t.Errorf("batch = %s, want system_name and test_echo answered", res.Batch)
	}
	if res.Subscription == "" || len(res.Heads) != 2 || res.Heads[1] != res.Heads[0]+1 {
		t.Errorf("subscription %q, heads %v; want 2 consecutive heads", res.Subscription, res.Heads)
	}
	if res.Close == nil || res.Close.Code != 1000 {
		t.Errorf("close = %+v, want 1000", res.Close)
	}
	if res.Origin != page.URL {
		t.Errorf("page origin %q, want %q", res.Origin, page.URL)
	}
	// The gateway decides on origins; the node never sees the browser's.
	if got := node.Headers()[0].Get("Origin"); got != "" {
		t.Errorf("node saw Origin %q, want none", got)
	}
	waitFor(t, "the browser's connection to end", func() bool { return p.Conns() == 0 && node.Conns() == 0 })
}

// TestE2EPoolFailover: two nodes behind one gateway. polkadot.js works;
// then a node dies without the gateway having noticed (no health checks,
// none of its connections open), and a new run still succeeds: its
// handshake tries the dead node first and fails over to the live one.
func TestE2EPoolFailover(t *testing.T) {
	t.Parallel()
	rpctest.RequireE2E(t)
	nodes := []*rpctest.Node{e2eNode(t), e2eNode(t)}
	opts := e2eOptions(t)
	opts.HealthInterval = -1 // only dials find the dead node
	p, err := NewPool([]string{nodes[0].URL(), nodes[1].URL()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	url, _, pemFile := tlsGateway(t, p)
	genesis := genesisHash(t, nodes[0])
	if g := genesisHash(t, nodes[1]); g != genesis {
		t.Fatalf("the nodes disagree on genesis: %s and %s", genesis, g)
	}

	checkPolkadot(t, runPolkadot(t, url, pemFile), genesis)
	waitFor(t, "the first run's connection to end", func() bool { return p.Conns() == 0 })

	// Hold one connection so that the other node has fewer and is the
	// first choice, then kill that one.
	held, live := dialTLSTracked(t, p, url, pemFile)
	defer held.CloseNow()
	dead := 1 - live
	nodes[dead].Kill()
	if !p.Nodes()[dead].Healthy {
		t.Fatalf("gateway noticed the dead node too early: %+v", p.Nodes()[dead])
	}

	checkPolkadot(t, runPolkadot(t, url, pemFile), genesis)
	st := p.Nodes()[dead]
	if st.Healthy || !strings.Contains(st.Reason, "dial failed") {
		t.Errorf("dead node %+v, want unhealthy after a failed dial", st)
	}
	for i, n := range nodes {
		if slices.Contains(n.Seen(), "author_rotateKeys") {
			t.Errorf("author_rotateKeys reached node %d", i)
		}
	}
}

// dialTLSTracked is dialTracked over wss:// with the gateway's certificate.
func dialTLSTracked(t *testing.T, p *Proxy, url, pemFile string) (*websocket.Conn, int) {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	before := poolConns(p)
	c := dial(t, url, &websocket.DialOptions{HTTPClient: client})
	after := poolConns(p)
	for i := range after {
		if after[i] == before[i]+1 {
			return c, i
		}
	}
	t.Fatalf("new connection not counted on any node: before %v, after %v", before, after)
	return nil, -1
}
