package wssproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

type message struct {
	Type websocket.MessageType
	Data string
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), nil)
	c := dial(t, url, nil)
	ctx := testCtx(t)
	want := []message{
		{websocket.MessageText, `{"id":1,"jsonrpc":"2.0","method":"system_health","params":[]}`},
		{websocket.MessageBinary, "\x00\x01\x02\xff binary"},
		{websocket.MessageText, ""},
		{websocket.MessageBinary, ""},
		{websocket.MessageText, strings.Repeat("é", 40000)}, // over one copy buffer
	}
	for _, m := range want {
		if err := c.Write(ctx, m.Type, []byte(m.Data)); err != nil {
			t.Fatal(err)
		}
	}
	var got []message
	for range want {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, message{typ, string(b)})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("echo through proxy (-want +got):\n%s", diff)
	}
}

// TestLargeMessage sends a 16 MiB message each way and checks the gateway
// streamed it: client, proxy and node all stream, so the live heap never
// comes near the message's size (buffering it whole anywhere would).
func TestLargeMessage(t *testing.T) {
	const size = 16 << 20
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{ReadLimit: 17 << 20})
	c := dial(t, url, nil)
	ctx := testCtx(t)

	// From a collected heap: what earlier tests left (garbage, pooled
	// buffers, which a second GC drops) is not this test's.
	runtime.GC()
	runtime.GC()
	base := heapObjects()
	stopSampling := make(chan struct{})
	peak := make(chan uint64, 1)
	go samplePeakHeap(stopSampling, peak)

	sent := sha256.New()
	w, err := c.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < size/len(chunk); i++ {
			binary.LittleEndian.PutUint64(chunk, uint64(i))
			sent.Write(chunk)
			if _, err := w.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- w.Close()
	}()
	typ, r, err := c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.CopyBuffer(got, r, make([]byte, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(stopSampling)
	if typ != websocket.MessageBinary || n != size || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Fatalf("got %v message of %d bytes (hash match %v), want binary %d bytes", typ, n,
			bytes.Equal(sent.Sum(nil), got.Sum(nil)), size)
	}
	pk := <-peak
	if p := pk - min(base, pk); p > size/2 {
		t.Errorf("heap peaked %d KiB above its start while relaying a %d MiB message; want it streamed (< %d KiB)", p>>10, size>>20, size>>11)
	} else {
		t.Logf("heap peaked %d KiB above its start while relaying %d MiB both ways", p>>10, size>>20)
	}
}

// heapObjects returns the bytes of heap objects, live and not yet swept,
// as samplePeakHeap reads them.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// samplePeakHeap reports the largest heap (live and not yet swept objects)
// seen until stop is closed. runtime/metrics reads it without stopping
// the world.
func samplePeakHeap(stop <-chan struct{}, peak chan<- uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var max uint64
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > max {
			max = v
		}
		select {
		case <-stop:
			peak <- max
			return
		case <-t.C:
		}
	}
}

func TestManyConnections(t *testing.T) {
	t.Parallel()
	const conns, msgs = 200, 100
	node := newEchoNode(t, nil)
	// Generous handshake bound: 400 dials at once under -race on 2 cores.
	_, url := startProxy(t, node.URL(), &Options{HandshakeTimeout: time.Minute, DialTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { errs <- exchange(ctx, url, i, msgs) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// exchange sends msgs numbered messages on one connection, pipelined, and
// checks they come back in order with their content.
func exchange(ctx context.Context, url string, conn, msgs int) error {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("conn %d: %w", conn, err)
	}
	defer c.CloseNow()
	payload := func(j int) string {
		return fmt.Sprintf(`{"id":%d,"jsonrpc":"2.0","method":"test_echo","params":["conn %d"]}`, j, conn)
	}
	werr := make(chan error, 1)
	go func() {
		for j := range msgs {
			if err := c.Write(ctx, websocket.MessageText, []byte(payload(j))); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for j := range msgs {
		_, b, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("conn %d message %d: %w", conn, j, err)
		}
		if string(b) != payload(j) {
			return fmt.Errorf("conn %d message %d: got %q, want %q", conn, j, b, payload(j))
		}
	}
	if err := <-werr; err != nil {
		return err
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

func TestSubprotocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		node      []string
		requested []string
		want      string
	}{
		{"node preference wins", []string{"b", "a"}, []string{"a", "b"}, "b"},
		{"second choice", []string{"b"}, []string{"a", "b"}, "b"},
		{"single", []string{"a"}, []string{"a", "b"}, "a"},
		{"none shared", []string{"x"}, []string{"a"}, ""},
		{"none requested", []string{"x"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newEchoNode(t, func(n *echoNode) { n.subprotocols = tt.node })
			_, url := startProxy(t, node.URL(), nil)
			c := dial(t, url, &websocket.DialOptions{Subprotocols: tt.requested})
			if got := c.Subprotocol(); got != tt.want {
				t.Errorf("client got subprotocol %q, want %q", got, tt.want)
			}
			if got := <-node.accepts; got != tt.want {
				t.Errorf("node chose %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCloseCodes(t *testing.T) {
	t.Parallel()
	t.Run("client to node", func(t *testing.T) {
		t.Parallel()
		node := newEchoNode(t, nil)
		_, url := startProxy(t, node.URL(), nil)
		c := dial(t, url, nil)
		c.Close(4001, "bye from client")
		want := websocket.CloseError{Code: 4001, Reason: "bye from client"}
		var got websocket.CloseError
		if err := node.nextClose(t); !errors.As(err, &got) || got != want {
			t.Errorf("node saw %v, want %v", err, want)
		}
	})
	t.Run("node to client", func(t *testing.T) {
		t.Parallel()
		node := newEchoNode(t, nil)
		_, url := startProxy(t, node.URL(), nil)
		c := dial(t, url, nil)
		ctx := testCtx(t)
		c.Write(ctx, websocket.MessageText, []byte("close 4002 bye from node"))
		_, _, err := c.Read(ctx)
		want := websocket.CloseError{Code: 4002, Reason: "bye from node"}
		var got websocket.CloseError
		if !errors.As(err, &got) || got != want {
			t.Errorf("client saw %v, want %v", err, want)
		}
	})
}

func TestNodeDown(t *testing.T) {
	t.Parallel()
	p, url := startProxy(t, "ws://"+freeAddr(t), nil)
	ctx := testCtx(t)
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil {
		t.Fatalf("dial through proxy to a dead node: err %v, resp %v; want a 502", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "node unavailable: connection refused") {
		t.Errorf("got %d %q, want 502 naming the reason", resp.StatusCode, body)
	}
	if p.Conns() != 0 {
		t.Errorf("proxy holds %d connections after a refused handshake", p.Conns())
	}
}

// TestNodeStallsHandshake: a node that accepts TCP but never answers the
// upgrade costs the client a 504 after HandshakeTimeout.
func TestNodeStallsHandshake(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, never answer
		}
	}()
	_, url := startProxy(t, "ws://"+l.Addr().String(), &Options{HandshakeTimeout: 200 * time.Millisecond})
	_, resp, err := websocket.Dial(testCtx(t), url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("got err %v resp %v, want 504", err, resp)
	}
}

func TestNodeKilledMidStream(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), nil) // default 20 s pings: the close must come from the event, not a timer
	c := dial(t, url, nil)
	ctx := testCtx(t)
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	node.kill() // the node process dies: TCP closed, no close frame
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart {
		t.Fatalf("client saw %v, want close 1012", err)
	}
	t.Logf("client got %v %v after the node died", ce, time.Since(start))
}

func TestClientVanishes(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	p, url := startProxy(t, node.URL(), nil)
	c := dial(t, url, nil)
	ctx := testCtx(t)
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	c.Read(ctx)
	c.CloseNow() // TCP close, no close frame
	var ce websocket.CloseError
	if err := node.nextClose(t); !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("node saw %v, want close 1001", err)
	}
	waitFor(t, "proxy to drop the connection", func() bool { return p.Conns() == 0 })
}

// TestBytesRightAfterHandshake: a client that sends a frame in the same TCP
// write as its handshake, and a node that greets before the client speaks,
// lose nothing.
func TestBytesRightAfterHandshake(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, func(n *echoNode) { n.greet = "welcome" })
	_, url := startProxy(t, node.URL(), nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	req.Write(maskedTextFrame("early bird"))
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var got []string
	for range 2 {
		got = append(got, readTextFrame(t, br))
	}
	if diff := cmp.Diff([]string{"welcome", "early bird"}, got); diff != "" {
		t.Errorf("frames after the handshake (-want +got):\n%s", diff)
	}
}

func maskedTextFrame(s string) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(s))}
	b = append(b, key[:]...)
	for i := range len(s) {
		b = append(b, s[i]^key[i%4])
	}
	return b
}

func readTextFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 || h[1]&0x80 != 0 || h[1] > 125 {
		t.Fatalf("unexpected frame header % x", h)
	}
	b := make([]byte, h[1])
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHeadersToNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		header  http.Header
		wantXFF string
		origin  string
	}{
		{"untrusted peer's XFF replaced", Options{},
			http.Header{"X-Forwarded-For": {"6.6.6.6"}, "Origin": {"https://app.example"}}, "127.0.0.1", ""},
		{"trusted peer's XFF resolved to the client alone", Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
			http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9", ""},
		{"client-written left-most entries never reach the node", Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
			http.Header{"X-Forwarded-For": {"1.1.1.1, 6.6.6.6", "203.0.113.9"}}, "203.0.113.9", ""},
		{"origin forwarded on request", Options{ForwardOrigin: true},
			http.Header{"Origin": {"https://app.example"}}, "127.0.0.1", "https://app.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newEchoNode(t, nil)
			_, url := startProxy(t, node.URL(), &tt.opts)
			dial(t, url, &websocket.DialOptions{HTTPHeader: tt.header})
			h := node.Headers()[0]
			nodeHost := strings.TrimPrefix(node.URL(), "ws://")
			got := []string{h.Get("Host"), strings.Join(h.Values("X-Forwarded-For"), "|"), h.Get("X-Real-IP"), h.Get("X-Forwarded-Proto"), h.Get("Origin")}
			want := []string{nodeHost, tt.wantXFF, tt.wantXFF, "http", tt.origin}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Host, X-Forwarded-For, X-Real-IP, -Proto, Origin seen by node (-want +got):\n%s", diff)
			}
			if h.Get("X-Forwarded-Host") == "" {
				t.Error("X-Forwarded-Host not set")
			}
		})
	}
}

func TestHTTPPassthrough(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{MaxBodyBytes: 1 << 10})
	base := "http" + strings.TrimPrefix(url, "ws")
	body := `{"id":7,"jsonrpc":"2.0","method":"system_health","params":[]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	nodeHost := strings.TrimPrefix(node.URL(), "ws://")
	if diff := cmp.Diff([]string{"200 OK", body, nodeHost, "", "127.0.0.1"}, []string{resp.Status, string(got),
		resp.Header.Get("X-Seen-Host"), resp.Header.Get("X-Seen-Origin"), resp.Header.Get("X-Seen-Forwarded-For")}); diff != "" {
		t.Errorf("POST through proxy: status, body, node's Host, Origin, XFF (-want +got):\n%s", diff)
	}

	t.Run("health", func(t *testing.T) {
		resp, err := http.Get(base + "/health")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"isSyncing":false`) {
			t.Errorf("GET /health: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			var r io.Reader = strings.NewReader(strings.Repeat("x", 2<<10))
			if chunked {
				r = io.MultiReader(r) // unknown length: sent chunked
			}
			resp, err := http.Post(base+"/", "application/json", r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("chunked=%v: got %d, want 413", chunked, resp.StatusCode)
			}
		}
	})
}

func TestPings(t *testing.T) {
	t.Parallel()
	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		node := newEchoNode(t, nil)
		_, url := startProxy(t, node.URL(), nil)
		c := dial(t, url, nil)
		ctx := testCtx(t)
		c.CloseRead(ctx) // a reader must run for pongs to arrive
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping through proxy: %v", err)
		}
	})
	t.Run("silent node detected", func(t *testing.T) {
		t.Parallel()
		node := newEchoNode(t, func(n *echoNode) { n.stall = true })
		_, url := startProxy(t, node.URL(), &Options{PingInterval: time.Second})
		c := dial(t, url, nil)
		_, _, err := c.Read(testCtx(t))
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusServiceRestart {
			t.Fatalf("client saw %v, want 1012 after the node stopped answering pings", err)
		}
	})
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{ReadLimit: 1 << 10})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 2<<10))
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("client saw %v, want 1009", err)
	}
	var ce websocket.CloseError
	if err := node.nextClose(t); !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("node saw %v, want 1001", err)
	}
}

func TestOriginPolicy(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{AllowedOrigins: []string{"polkadot.js.org", "*.example.com"}})
	for _, tt := range []struct {
		origin string
		ok     bool
	}{{"https://polkadot.js.org", true}, {"https://app.example.com", true}, {"https://evil.test", false}, {"", true}} {
		c, resp, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {tt.origin}}})
		if tt.ok != (err == nil) {
			t.Errorf("origin %q: err %v, want ok=%v", tt.origin, err, tt.ok)
		}
		if err == nil {
			c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: want 403, got %v", tt.origin, resp)
		}
	}
	if got := len(node.Headers()); got != 3 {
		t.Errorf("node saw %d handshakes, want 3 (the refused origin must not reach it)", got)
	}
}

func TestBadHandshakes(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), nil)
	base := "http" + strings.TrimPrefix(url, "ws")
	good := func() http.Header {
		return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	}
	tests := []struct {
		name   string
		edit   func(h http.Header)
		status int
	}{
		{"version 8", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"bad key", func(h http.Header) { h.Set("Sec-WebSocket-Key", "short") }, http.StatusBadRequest},
		{"h2c upgrade", func(h http.Header) { h.Set("Upgrade", "h2c") }, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base, nil)
			req.Header = good()
			tt.edit(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := len(node.Headers()); n != 0 {
		t.Errorf("node saw %d requests; bad handshakes must not reach it", n)
	}
}

func TestOptionsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		upstream string
		opts     Options
		want     string
	}{
		{"http//x", Options{}, "scheme must be ws:// or wss://"},
		{"ws://", Options{}, "missing host"},
		{"ws://n:1", Options{MaxBodyBytes: -1}, "Options.MaxBodyBytes"},
		{"ws://n:1", Options{DialTimeout: -time.Second}, "Options.DialTimeout"},
		{"ws://n:1", Options{IdleTimeout: -time.Second}, "Options.IdleTimeout"},
		{"ws://n:1", Options{AllowedOrigins: []string{"[bad"}}, "Options.AllowedOrigins[0]"},
		{"ws://n:1", Options{TrustedProxies: []netip.Prefix{{}}}, "Options.TrustedProxies[0]"},
	}
	for _, tt := range tests {
		_, err := New(tt.upstream, &tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "wssproxy: ") {
			t.Errorf("New(%q, %+v) = %v, want error naming %q", tt.upstream, tt.opts, err, tt.want)
		}
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	p, url := startProxy(t, node.URL(), nil)
	ctx := testCtx(t)
	var clients []*websocket.Conn
	for range 5 {
		c := dial(t, url, nil)
		c.Write(ctx, websocket.MessageText, []byte("hi"))
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Shutdown(ctx) }()
	for i, c := range clients {
		_, _, err := c.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != reasonShutdown {
			t.Errorf("client %d saw %v, want 1001 %q", i, err, reasonShutdown)
		}
	}
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake after Shutdown: %v %v, want 503", resp, err)
	}
	if err := p.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close after Shutdown = %v, want net.ErrClosed", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, url, nil)
	_, _, err := c.Read(testCtx(t))
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "idle timeout" {
		t.Errorf("client saw %v, want 1001 idle timeout", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
