package wssproxy

import (
	"context"
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// countingListener counts the bytes the server writes to its clients:
// what crosses the client's wire, TLS records and all.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// deflateGateway serves a gateway for node over TLS, with compression on
// or off, and counts the bytes it sends clients.
func deflateGateway(t *testing.T, node *rpctest.Node, on bool) (p *Proxy, url, pemFile string, sent *atomic.Int64) {
	t.Helper()
	opts := e2eOptions(t)
	opts.Deflate = &DeflateOptions{Disabled: !on}
	p, err := New(node.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sent = new(atomic.Int64)
	url, _, pemFile = tlsGatewayOn(t, p, func(l net.Listener) net.Listener { return countingListener{l, sent} })
	return p, url, pemFile, sent
}

// TestE2EDeflatePolkadotJS: @polkadot/api in Node (whose ws offers
// permessage-deflate) gets the same answers through the gateway with
// compression as without, metadata included, for a fraction of the bytes.
func TestE2EDeflatePolkadotJS(t *testing.T) {
	t.Parallel()
	rpctest.RequireE2E(t)
	node := e2eNode(t)
	genesis := genesisHash(t, node)
	var results [2]*rpctest.PolkadotResult
	var bytes [2]int64
	for i, on := range []bool{false, true} {
		_, url, pemFile, sent := deflateGateway(t, node, on)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		res, err := rpctest.RunPolkadot(ctx, url, "NODE_EXTRA_CA_CERTS="+pemFile, "HEADS=2",
			"CALLS=author_rotateKeys,state_getMetadata", "EXPECT_CALLS=any")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		checkPolkadot(t, res, genesis)
		if out := res.Calls["state_getMetadata"]; !out.OK || len(out.Result) < 1<<20 {
			t.Errorf("deflate %v: state_getMetadata = ok %v, %d bytes", on, out.OK, len(out.Result))
		}
		results[i], bytes[i] = res, sent.Load()
		t.Logf("deflate %v: polkadot.js run took %d ms; the gateway sent it %d bytes", on, res.ElapsedMs, bytes[i])
	}
	ignore := cmpopts.IgnoreFields(rpctest.PolkadotResult{}, "URL", "ElapsedMs", "Header", "HashMatches", "Heads", "Health", "Warnings") // checkPolkadot checked those
	if diff := cmp.Diff(results[0], results[1], ignore, cmp.Comparer(jsonEqual)); diff != "" {
		t.Errorf("results plain vs compressed (-plain +deflate):\n%s", diff)
	}
	// Two metadata replies of 1.37 MB each are most of the plain run.
	if bytes[1] > bytes[0]/2 {
		t.Errorf("with deflate the gateway sent %d bytes, without %d: not negotiated?", bytes[1], bytes[0])
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
}

// TestE2EDeflateBrowser: Chromium negotiates permessage-deflate with the
// gateway, without and with context takeover (which Chromium then uses
// for the calls it compresses), and reads the same replies, the metadata
// among them, as the node gives.
func TestE2EDeflateBrowser(t *testing.T) {
	t.Parallel()
	rpctest.RequireChromium(t)
	node := e2eNode(t)
	var meta string
	if err := json.Unmarshal(nodeCall(t, node, "state_getMetadata"), &meta); err != nil {
		t.Fatal(err)
	}
	modes := []*DeflateOptions{{Disabled: true}, nil, {ContextTakeover: true}}
	var results [3]*rpctest.BrowserResult
	var bytes [3]int64
	for i, d := range modes {
		on := d == nil || !d.Disabled
		p, err := New(node.URL(), &Options{Deflate: d, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		sent := new(atomic.Int64)
		url, leaf, _ := tlsGatewayOn(t, p, func(l net.Listener) net.Listener { return countingListener{l, sent} })
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		res, err := rpctest.RunBrowser(ctx, url, "SPKI="+rpctest.SPKI(leaf), "HEADS=2", "METADATA=1")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		results[i], bytes[i] = res, sent.Load()
		t.Logf("mode %d (deflate %v): Chromium %s took %d ms, negotiated %q; the gateway sent it %d bytes", i, on, res.Browser, res.ElapsedMs, res.Extensions, bytes[i])
		if res.Metadata != meta {
			t.Errorf("deflate %v: state_getMetadata through the gateway differs from the node's (%d bytes, want %d)", on, len(res.Metadata), len(meta))
		}
	}
	wantExt := []string{"", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "permessage-deflate; client_max_window_bits=15"}
	ignore := cmpopts.IgnoreFields(rpctest.BrowserResult{}, "URL", "ElapsedMs", "Extensions", "Heads", "Replies", "Subscription", "Console")
	for i := range modes {
		if results[i].Extensions != wantExt[i] {
			t.Errorf("mode %d: extensions %q, want %q", i, results[i].Extensions, wantExt[i])
		}
		if diff := cmp.Diff(results[0], results[i], ignore); diff != "" {
			t.Errorf("results plain vs mode %d (-plain +deflate):\n%s", i, diff)
		}
		if i > 0 && bytes[i] > bytes[0]/2 {
			t.Errorf("mode %d: the gateway sent %d bytes, %d plain", i, bytes[i], bytes[0])
		}
	}
}
