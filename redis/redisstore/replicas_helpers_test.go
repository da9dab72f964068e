package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/wssproxy"
)

// startNode runs a fake Substrate node until t ends.
func startNode(t *testing.T) *rpctest.Node { return startNodeB(t) }

func startNodeB(t testing.TB) *rpctest.Node {
	t.Helper()
	n, err := rpctest.Start(&rpctest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startReplica runs one gateway replica in front of node with opts
// (which it completes) and returns its ws:// URL. The client key is the
// X-Forwarded-For address, as behind a load balancer on loopback.
func startReplica(t testing.TB, nodeURL string, opts wssproxy.Options) string {
	t.Helper()
	opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	opts.HealthInterval = -1
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p, err := wssproxy.New(nodeURL, &opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := wssproxy.NewServer("", p, nil, opts.Logger)
	go srv.Serve(ln)
	t.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return "ws://" + ln.Addr().String()
}

// dial opens a WebSocket to a replica as client (an IP address) and
// returns the HTTP status of the handshake (101 on success) and the
// connection if it succeeded, closed when t ends.
func dial(t testing.TB, url, client string) (int, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Forwarded-For": {client}},
	})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("refusal %d without Retry-After", resp.StatusCode)
			}
		}
		return resp.StatusCode, nil
	}
	t.Cleanup(func() { c.CloseNow() })
	return http.StatusSwitchingProtocols, c
}

// call makes one JSON-RPC call over c, to show the connection works.
func call(t testing.TB, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	} else if len(msg) == 0 {
		t.Fatal("empty reply")
	}
}

func statusText(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }
