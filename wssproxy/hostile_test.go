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
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Hostile clients, injected over loopback sockets into a gateway served by
// NewServer as in production. Each test asserts what the client got, what
// the node saw, and that the process's goroutines and live heap come back
// to where they were. The tests are not parallel: footprints measure the
// whole process, so they run alone while the package's parallel tests wait.

// heapSlack is how much the live heap may grow over one hostile case.
const heapSlack = 8 << 20

// serveGateway serves a Proxy for upstream with NewServer, its header
// timeout shortened for tests, on a loopback port it returns. configure,
// if not nil, adjusts the server before it serves. Unless opts says
// otherwise the proxy is a pure splice (AllowAll) without health checks.
func serveGateway(t *testing.T, upstream string, opts *Options, headerTimeout time.Duration,
	configure func(*http.Server)) (*Proxy, string) {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	if o.Policy == nil {
		o.Policy = AllowAll()
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = -1
	}
	p, err := New(upstream, &o)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer("", p, nil, o.Logger)
	srv.ReadHeaderTimeout = headerTimeout
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		p.Close()
		srv.Close()
		<-done
	})
	return p, ln.Addr().String()
}

// recNode is a node that records every message it receives and how each
// connection ended. It can echo, greet each client, or flood it.
type recNode struct {
	srv          *httptest.Server
	subprotocols []string
	echo         bool
	greet        []byte // sent as a binary message after the handshake
	flood        int    // > 0: send binary messages this long until the connection fails

	flooded atomic.Int64 // bytes the flood has written
	ends    chan error   // each connection's end, as its Read returned it

	mu      sync.Mutex
	headers []http.Header
	msgs    []recMsg
}

// recMsg is a message as the node received it: whole, or for a long one
// its length and digest only, so that the node does not hold it.
type recMsg struct {
	typ  websocket.MessageType
	n    int
	sum  [32]byte
	data []byte // nil above 4 KiB
}

func newRecMsg(typ websocket.MessageType, b []byte) recMsg {
	m := recMsg{typ: typ, n: len(b), sum: sha256.Sum256(b)}
	if len(b) <= 4<<10 {
		m.data = bytes.Clone(b)
	}
	return m
}

func (m recMsg) equal(o recMsg) bool { return m.typ == o.typ && m.n == o.n && m.sum == o.sum }

func (m recMsg) String() string {
	if m.data != nil {
		return fmt.Sprintf("%v %q", m.typ, m.data)
	}
	return fmt.Sprintf("%v of %d bytes, sha256 %x", m.typ, m.n, m.sum[:6])
}

func newRecNode(t *testing.T, configure func(*recNode)) *recNode {
	t.Helper()
	n := &recNode{ends: make(chan error, 64)}
	if configure != nil {
		configure(n)
	}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *recNode) URL() string { return "ws" + strings.TrimPrefix(n.srv.URL, "http") }

func (n *recNode) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	n.headers = append(n.headers, r.Header.Clone())
	n.mu.Unlock()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: n.subprotocols, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	ctx := context.Background()
	if n.greet != nil {
		c.Write(ctx, websocket.MessageBinary, n.greet)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.CloseNow() // ends the flood
	if n.flood > 0 {
		wg.Go(func() {
			msg := make([]byte, n.flood)
			for c.Write(ctx, websocket.MessageBinary, msg) == nil {
				n.flooded.Add(int64(len(msg)))
			}
		})
	}
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			n.ends <- err
			return
		}
		n.mu.Lock()
		n.msgs = append(n.msgs, newRecMsg(typ, b))
		n.mu.Unlock()
		if n.echo {
			c.Write(ctx, typ, b)
		}
	}
}

func (n *recNode) Msgs() []recMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.msgs)
}

func (n *recNode) Handshakes() []http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.headers)
}

// end waits for the next connection end the node sees and returns its
// close code, or -1 if it ended without a close frame.
func (n *recNode) end(t *testing.T) websocket.StatusCode {
	t.Helper()
	select {
	case err := <-n.ends:
		return websocket.CloseStatus(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the node's connection did not end within 10s")
		return 0
	}
}

// wsRequest is a valid WebSocket handshake; extra header lines go before
// the blank line that ends it.
func wsRequest(extra string) string {
	return "GET / HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// rawConn is a WebSocket client on a bare TCP connection, to send what no
// WebSocket library would.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw completes a WebSocket handshake with the gateway at addr.
func dialRaw(t *testing.T, addr, extraHeaders string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, wsRequest(extraHeaders)); err != nil {
		t.Fatal(err)
	}
	c := &rawConn{Conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s, want 101", resp.Status)
	}
	return c
}

// frame encodes one frame. first is the FIN, RSV and opcode byte; a masked
// frame gets a fixed mask key.
func frame(first byte, masked bool, payload []byte) []byte {
	b := []byte{first, 0}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b[1] |= 0x80
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// readClose reads frames from the gateway until a close frame and returns
// its code (1005 if it carries none), or -1 if the connection ends first.
func (c *rawConn) readClose(t *testing.T) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [10]byte
	for {
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the gateway neither closed nor sent a close frame within 10s")
			}
			return -1
		}
		if h[1]&0x80 != 0 {
			t.Fatalf("the gateway sent a masked frame % x", h[:2])
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			io.ReadFull(c.br, h[2:4])
			n = uint64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			io.ReadFull(c.br, h[2:10])
			n = binary.BigEndian.Uint64(h[2:10])
		}
		payload := make([]byte, min(n, 125))
		if h[0]&0x0f != 0x8 {
			if _, err := io.CopyN(io.Discard, c.br, int64(n)); err != nil {
				return -1
			}
			continue
		}
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return -1
		}
		if len(payload) < 2 {
			return int(websocket.StatusNoStatusRcvd)
		}
		return int(binary.BigEndian.Uint16(payload))
	}
}

// isClosed reports whether err ends a read because the peer closed or
// reset the connection.
func isClosed(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestHostileSlowHandshake: a client trickling its request headers, one
// byte every 50 ms (slowloris), is cut off at ReadHeaderTimeout and never
// reaches the node.
func TestHostileSlowHandshake(t *testing.T) {
	const headerTimeout = 300 * time.Millisecond
	node := newRecNode(t, nil)
	_, addr := serveGateway(t, node.URL(), nil, headerTimeout, nil)
	fp := takeFootprint()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	req := wsRequest("")
	trickled := make(chan int, 1)
	go func() {
		n := 0
		for ; n < len(req); n++ {
			if _, err := io.WriteString(conn, req[n:n+1]); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		trickled <- n
	}()
	conn.SetReadDeadline(start.Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	if !isClosed(err) {
		t.Fatalf("read: %v after %v, want the gateway to close the connection", err, elapsed)
	}
	// net/http answers a header timeout after a partial request with 400
	// (408 would be the precise code); either, or nothing, will do.
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) && !bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) {
		t.Errorf("gateway answered %q, want nothing, 400 or 408", got)
	}
	if elapsed < headerTimeout*8/10 || elapsed > 8*time.Second {
		t.Errorf("connection closed after %v, want about ReadHeaderTimeout (%v)", elapsed, headerTimeout)
	}
	conn.Close()
	n := <-trickled
	if n >= len(req) {
		t.Errorf("the whole %d-byte request was trickled in; the gateway waited for it", n)
	}
	t.Logf("closed after %v (%d of %d header bytes sent), answer %q", elapsed.Round(time.Millisecond), n, len(req), got)
	if h := node.Handshakes(); len(h) != 0 {
		t.Errorf("node saw %d handshakes, want none", len(h))
	}
	fp.settle(t, heapSlack)
}

// TestHostileHalfOpenFlood: connections that are opened and then send
// nothing cost the gateway one goroutine and a few KiB each, and all of
// them are closed at ReadHeaderTimeout.
func TestHostileHalfOpenFlood(t *testing.T) {
	const conns = 500
	const headerTimeout = time.Second
	node := newRecNode(t, nil)
	var opened, closed atomic.Int64
	_, addr := serveGateway(t, node.URL(), nil, headerTimeout, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				opened.Add(1)
			case http.StateClosed:
				closed.Add(1)
			}
		}
	})
	fp := takeFootprint()
	start := time.Now()
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	waitFor(t, "the gateway to accept every connection", func() bool { return opened.Load() == conns })
	held := takeFootprint()
	if n := closed.Load(); n > 0 {
		t.Logf("%d connections timed out before the measurement", n)
	}
	perConn := (int64(held.heap) - int64(fp.heap)) / conns
	t.Logf("%d half-open connections opened in %v: %+d goroutines, %d bytes of heap and %d bytes of stack each (client sockets included)",
		conns, time.Since(start).Round(time.Millisecond), held.goroutines-fp.goroutines, perConn, (int64(held.stack)-int64(fp.stack))/conns)
	if perConn > 32<<10 {
		t.Errorf("each half-open connection holds %d bytes of heap, want under 32 KiB", perConn)
	}
	waitFor(t, "ReadHeaderTimeout to close every connection", func() bool { return closed.Load() == conns })
	if d := time.Since(start); d < headerTimeout || d > headerTimeout+5*time.Second {
		t.Errorf("all closed after %v, want about ReadHeaderTimeout (%v)", d, headerTimeout)
	}
	answered := 0
	for i, c := range cs {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if !isClosed(err) {
			t.Fatalf("connection %d: %v, want closed", i, err)
		}
		if len(b) > 0 {
			answered++
		}
		c.Close()
	}
	if answered > 0 {
		t.Errorf("%d silent connections were sent a response, want none", answered)
	}
	if h := node.Handshakes(); len(h) != 0 {
		t.Errorf("node saw %d handshakes, want none", len(h))
	}
	fp.settle(t, heapSlack)
}

// rawRequest sends req on a new connection to addr and returns the
// status of the answer. It writes while it reads, since the gateway may
// answer (and hang up) before a huge request is all sent.
func rawRequest(t *testing.T, addr, req string) (*http.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// TestHostileHeaders: absurd or malformed requests get a 4xx or 5xx from
// net/http or the gateway before anything reaches the node; huge but legal
// subprotocol lists are handled.
func TestHostileHeaders(t *testing.T) {
	pad := func(total int) string {
		var b strings.Builder
		for i := 0; b.Len() < total; i++ {
			fmt.Fprintf(&b, "X-Pad-%d: %s\r\n", i, strings.Repeat("p", 1000))
		}
		return b.String()
	}
	protocols := func(n int) []string {
		var ps []string
		for i := range n {
			ps = append(ps, fmt.Sprintf("proto-%04d", i))
		}
		return ps
	}
	node := newRecNode(t, func(n *recNode) { n.subprotocols = []string{"proto-0999"} })
	_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
	fp := takeFootprint()
	refused := []struct {
		name   string
		req    string
		status int
	}{
		{"100 KiB of headers", wsRequest(pad(100 << 10)), http.StatusRequestHeaderFieldsTooLarge},
		{"one 100 KiB header", wsRequest("X-Big: " + strings.Repeat("b", 100<<10) + "\r\n"), http.StatusRequestHeaderFieldsTooLarge},
		{"20 KiB of subprotocols", wsRequest("Sec-WebSocket-Protocol: " + strings.Join(protocols(1700), ", ") + "\r\n"),
			http.StatusRequestHeaderFieldsTooLarge},
		{"garbage request line", "GARBAGE\r\n\r\n", http.StatusBadRequest},
		{"request line without a version", "GET /\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"header line without a colon", wsRequest("NoColonHere\r\n"), http.StatusBadRequest},
		{"space in a header name", wsRequest("Bad Name: x\r\n"), http.StatusBadRequest},
		{"NUL in a header value", wsRequest("X-Nul: a\x00b\r\n"), http.StatusBadRequest},
		{"no Host", strings.Replace(wsRequest(""), "Host: gateway.test\r\n", "", 1), http.StatusBadRequest},
		{"two Hosts", wsRequest("Host: other.test\r\n"), http.StatusBadRequest},
		{"HTTP/9.9", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", http.StatusHTTPVersionNotSupported},
		{"upgrade over HTTP/1.0", strings.Replace(wsRequest(""), "HTTP/1.1", "HTTP/1.0", 1), http.StatusBadRequest},
		{"two Content-Lengths", wsRequest("Content-Length: 1\r\nContent-Length: 2\r\n"), http.StatusBadRequest},
		// A handshake with a body that never comes: net/http's Hijack (in
		// websocket.Accept) reads up to 256 KiB of it first, after the
		// node was dialed, and no timeout covers that wait.
		{"chunked body", wsRequest("Transfer-Encoding: chunked\r\n"), http.StatusBadRequest},
		{"Content-Length body", wsRequest("Content-Length: 5\r\n"), http.StatusBadRequest},
		{"Content-Length and chunked", wsRequest("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), http.StatusBadRequest},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := rawRequest(t, addr, tt.req)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("got %s, want %d", resp.Status, tt.status)
			}
		})
	}
	if h := node.Handshakes(); len(h) != 0 {
		t.Errorf("node saw %d handshakes from refused requests, want none", len(h))
	}
	t.Run("1000 subprotocols in one header", func(t *testing.T) {
		ps := protocols(1000) // 14 KiB, under the 16 KiB header limit
		c := dial(t, "ws://"+addr, &websocket.DialOptions{Subprotocols: ps})
		if got := c.Subprotocol(); got != "proto-0999" {
			t.Errorf("subprotocol %q, want the node's choice proto-0999", got)
		}
		c.Close(websocket.StatusNormalClosure, "")
		node.end(t)
		h := node.Handshakes()
		if got := subprotocols(&http.Request{Header: h[len(h)-1]}); !slices.Equal(got, ps) {
			t.Errorf("node was offered %d subprotocols, want the client's %d in order", len(got), len(ps))
		}
	})
	t.Run("400 subprotocol header lines and empty tokens", func(t *testing.T) {
		var lines strings.Builder
		for _, p := range protocols(400) {
			fmt.Fprintf(&lines, "Sec-WebSocket-Protocol: %s, ,\r\n", p)
		}
		c := dialRaw(t, addr, lines.String())
		c.Write(frame(0x88, true, []byte{0x03, 0xe8}))
		if code := c.readClose(t); code != 1000 {
			t.Errorf("close answered with %d, want 1000", code)
		}
		node.end(t)
	})
	fp.settle(t, heapSlack)
}
