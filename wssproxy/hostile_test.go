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
	"math/rand/v2"
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

// TestHostileClientNeverReads: a node floods a client that never reads.
// The backlog must stay in the kernel's socket buffers, not the gateway's
// heap, and the gateway must drop the client (its pings go unanswered, or
// its writes stall for WriteTimeout) and close the node with 1001.
func TestHostileClientNeverReads(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"pings and write timeout", Options{WriteTimeout: 500 * time.Millisecond, PingInterval: 200 * time.Millisecond}},
		{"write timeout alone", Options{WriteTimeout: 500 * time.Millisecond, PingInterval: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, func(n *recNode) { n.flood = 64 << 10 })
			p, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			c := dialRaw(t, addr, "")
			start := time.Now()
			peak := int64(0)
			for p.Conns() > 0 {
				if time.Since(start) > 10*time.Second {
					t.Fatal("the gateway kept a client that never reads for 10s")
				}
				peak = max(peak, int64(takeFootprint().heap)-int64(fp.heap))
				time.Sleep(20 * time.Millisecond)
			}
			dropped := time.Since(start)
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			backlog, err := io.Copy(io.Discard, c.br)
			if !isClosed(err) {
				t.Errorf("client's socket after the drop: %v, want EOF or reset", err)
			}
			flooded := node.flooded.Load()
			t.Logf("dropped after %v; node flooded %d KiB, client's socket held %d KiB; gateway heap peak growth %d KiB",
				dropped.Round(time.Millisecond), flooded>>10, backlog>>10, peak>>10)
			if dropped > 8*time.Second { // about WriteTimeout; generous for loaded CI machines
				t.Errorf("client dropped after %v, want about WriteTimeout", dropped)
			}
			if peak > heapSlack {
				t.Errorf("live heap grew by %d KiB during the flood; the backlog belongs in socket buffers", peak>>10)
			}
			if flooded < 1<<20 {
				t.Errorf("node flooded only %d KiB: the client was dropped before its buffers filled", flooded>>10)
			}
			fp.settle(t, heapSlack)
		})
	}
}

// TestHostileOversized: a message over ReadLimit gets its sender 1009 and
// the other side 1001, and never reaches the other side whole, whether it
// fits the copy buffer, is streamed, or is inspected.
func TestHostileOversized(t *testing.T) {
	long := `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["` + strings.Repeat("a", 100<<10) + `"]}`
	for _, tt := range []struct {
		name     string
		opts     Options
		typ      websocket.MessageType
		msg      []byte // from the client; nil: the node greets with greet instead
		greet    []byte
		nodeCode websocket.StatusCode
	}{
		{"splice, one buffer", Options{ReadLimit: 1 << 10}, websocket.MessageText,
			bytes.Repeat([]byte("x"), 2<<10), nil, websocket.StatusGoingAway},
		{"splice, streamed", Options{ReadLimit: 48 << 10}, websocket.MessageBinary,
			bytes.Repeat([]byte{0xa5}, 100<<10), nil, websocket.StatusGoingAway},
		{"inspected", Options{ReadLimit: 48 << 10, Policy: DefaultPolicy()}, websocket.MessageText,
			[]byte(long), nil, websocket.StatusGoingAway},
		{"from the node", Options{ReadLimit: 1 << 10}, 0,
			nil, bytes.Repeat([]byte("n"), 2<<10), websocket.StatusMessageTooBig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, func(n *recNode) { n.greet = tt.greet })
			_, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			ctx := testCtx(t)
			c := dial(t, "ws://"+addr, nil)
			if tt.msg != nil {
				if err := c.Write(ctx, tt.typ, tt.msg); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Errorf("client read %v, want close 1009", err)
			}
			if code := node.end(t); code != tt.nodeCode {
				t.Errorf("node's connection ended with %v, want %v", code, tt.nodeCode)
			}
			if m := node.Msgs(); len(m) != 0 {
				t.Errorf("node received %v, want nothing", m)
			}
			c.CloseNow()
			fp.settle(t, heapSlack)
		})
	}
}

// TestHostileInvalidFrames: frames that break RFC 6455, sent after a valid
// handshake, fail the client's connection. coder/websocket sends 1002 for
// most; for an unmasked frame or a negative length it closes without a
// close frame, which RFC 6455 section 7.1.7 allows (a close frame is only
// a SHOULD). The node gets 1001 and none of it.
func TestHostileInvalidFrames(t *testing.T) {
	const protocolError, noCloseFrame = 1002, -1
	mask := true
	tests := []struct {
		name  string
		bytes []byte
		want  int
	}{
		{"unmasked frame", frame(0x81, !mask, []byte("hi")), noCloseFrame},
		{"reserved data opcode 0x3", frame(0x83, mask, []byte("hi")), protocolError},
		{"reserved control opcode 0xB", frame(0x8b, mask, nil), protocolError},
		{"fragmented ping", frame(0x09, mask, []byte("p")), protocolError},
		{"ping over 125 bytes", frame(0x89, mask, make([]byte, 126)), protocolError},
		{"RSV1 without compression", frame(0xc1, mask, []byte("hi")), protocolError},
		{"RSV2", frame(0xa1, mask, []byte("hi")), protocolError},
		{"RSV3", frame(0x92, mask, []byte("hi")), protocolError},
		{"continuation first", frame(0x80, mask, []byte("hi")), protocolError},
		{"new message inside a fragmented one",
			append(frame(0x01, mask, []byte("a")), frame(0x81, mask, []byte("b"))...), protocolError},
		{"close with a one-byte payload", frame(0x88, mask, []byte{3}), protocolError},
		{"close with reserved code 1005", frame(0x88, mask, []byte{0x03, 0xed}), protocolError},
		{"negative 64-bit length", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, noCloseFrame},
	}
	node := newRecNode(t, nil)
	_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := takeFootprint()
			c := dialRaw(t, addr, "")
			if _, err := c.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			if got := c.readClose(t); got != tt.want {
				t.Errorf("client got close code %d, want %d (-1: no close frame)", got, tt.want)
			}
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			c.Close()
			fp.settle(t, heapSlack)
		})
	}
	if m := node.Msgs(); len(m) != 0 {
		t.Errorf("node received %v, want nothing", m)
	}
}

// TestHostileBadUTF8: a text message that is not UTF-8 closes the client
// with 1007, whether it fits the copy buffer, is streamed or is inspected,
// and never reaches the node whole; valid runes split across frames and
// copy buffers pass unchanged.
func TestHostileBadUTF8(t *testing.T) {
	big := strings.Repeat("a", 40<<10)
	for _, tt := range []struct {
		name string
		opts Options
		msg  string
	}{
		{"invalid byte", Options{}, "caf\xe9"},
		{"overlong encoding", Options{}, "\xc0\xaf"},
		{"surrogate half", Options{}, "\xed\xa0\x80"},
		{"streamed, invalid past the first buffer", Options{}, big + "\xff" + big},
		{"streamed, ends inside a rune", Options{}, big + "\xe2\x82"},
		{"inspected", Options{Policy: DefaultPolicy()}, `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["` + "\xff" + `"]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, nil)
			_, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			ctx := testCtx(t)
			c := dial(t, "ws://"+addr, nil)
			if err := c.Write(ctx, websocket.MessageText, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
				t.Errorf("client read %v, want close 1007", err)
			}
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			if m := node.Msgs(); len(m) != 0 {
				t.Errorf("node received %v, want nothing", m)
			}
			c.CloseNow()
			fp.settle(t, heapSlack)
		})
	}
	t.Run("valid runes across frames and buffers", func(t *testing.T) {
		node := newRecNode(t, func(n *recNode) { n.echo = true })
		_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		var msgs []string
		for off := bufSize - 3; off < bufSize; off++ { // a 4-byte rune across the copy buffer's end
			msgs = append(msgs, strings.Repeat("a", off)+"😀"+strings.Repeat("b", 100))
		}
		var soup strings.Builder
		for i := 0; soup.Len() < 100<<10; i++ {
			soup.WriteString([]string{"a", "é", "€", "😀", "ω"}[i*7%5])
		}
		msgs = append(msgs, soup.String())
		for i, m := range msgs {
			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			for b, step := []byte(m), 1+i*997%4093; len(b) > 0; b = b[min(step, len(b)):] {
				w.Write(b[:min(step, len(b))]) // one frame per write, splitting runes
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.Read(ctx); err != nil || string(got) != m {
				t.Fatalf("message %d (%d bytes): echo of %d bytes, %v", i, len(m), len(got), err)
			}
		}
		got := node.Msgs()
		for i, m := range msgs {
			if i >= len(got) || !got[i].equal(newRecMsg(websocket.MessageText, []byte(m))) {
				t.Fatalf("node received %v, want the %d messages sent", got, len(msgs))
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		node.end(t)
		fp.settle(t, heapSlack)
	})
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

// TestHostileMalformedJSON: with the default policy, a message the gateway
// cannot parse is answered by the gateway itself, as the node would (-32700
// and id null, or -32600 for JSON that is no request), and forwarded to
// nothing: a call the policy cannot read must not reach a node that might
// read it differently. With AllowAll the proxy is a pure splice and passes
// every byte on unchanged, for the node to answer.
func TestHostileMalformedJSON(t *testing.T) {
	call := callJSON(1, "system_chain")
	var batch []string
	for i := range maxBatch + 1 {
		batch = append(batch, callJSON(i, "system_chain"))
	}
	tests := []struct {
		name, msg string
		code      int
	}{
		{"truncated", `{"id":1,"jsonrpc":"2.0","method":`, -32700},
		{"not JSON", "not json", -32700},
		{"empty", "", -32700},
		{"whitespace", " \r\n\t", -32700},
		{"NUL", "\x00", -32700},
		{"byte order mark", "\ufeff" + call, -32700},
		{"trailing garbage", call + "xyz", -32700},
		{"two requests", call + call, -32700},
		{"unterminated string", `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["abc`, -32700},
		{"nested 100000 deep", strings.Repeat("[", 100000), -32700},
		{"nested objects 100000 deep", strings.Repeat(`{"a":`, 100000), -32700},
		{"empty batch", "[]", -32600},
		{"string", `"system_chain"`, -32600},
		{"number", "42", -32600},
		{"batch over maxBatch", "[" + strings.Join(batch, ",") + "]", -32005},
	}
	t.Run("default policy", func(t *testing.T) {
		node := startNode(t)
		_, addr := serveGateway(t, node.URL(), &Options{Policy: DefaultPolicy()}, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		for _, tt := range tests {
			c.Write(ctx, websocket.MessageText, []byte(tt.msg))
			if r := readReply(t, ctx, c); r.Error == nil || r.Error.Code != tt.code || string(r.ID) != "null" {
				t.Errorf("%s: reply %+v, want error %d with id null", tt.name, r, tt.code)
			}
		}
		c.Write(ctx, websocket.MessageText, []byte(callJSON(7, "system_name")))
		if r := readReply(t, ctx, c); r.Error != nil || string(r.ID) != "7" {
			t.Errorf("system_name after the malformed messages: %+v", r)
		}
		if got := node.Seen(); !slices.Equal(got, []string{"system_name"}) {
			t.Errorf("node saw %q, want only the valid call after them", got)
		}
		c.Close(websocket.StatusNormalClosure, "")
		fp.settle(t, heapSlack)
	})
	t.Run("AllowAll", func(t *testing.T) {
		node := newRecNode(t, nil)
		_, addr := serveGateway(t, node.URL(), &Options{Policy: AllowAll()}, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		for _, tt := range tests {
			c.Write(ctx, websocket.MessageText, []byte(tt.msg))
		}
		waitFor(t, "the node to receive every message", func() bool { return len(node.Msgs()) >= len(tests) })
		for i, m := range node.Msgs() {
			if want := newRecMsg(websocket.MessageText, []byte(tests[i].msg)); !m.equal(want) {
				t.Errorf("%s: node received %v, want %v", tests[i].name, m, want)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		node.end(t)
		fp.settle(t, heapSlack)
	})
}

// TestHostileBinarySplice: libp2p-like binary traffic through AllowAll (a
// pure splice), messages of 1 B to 200 KiB, some sent in many frames,
// pipelined both ways, arrives byte-exact at the node and back.
func TestHostileBinarySplice(t *testing.T) {
	node := newRecNode(t, func(n *recNode) { n.echo = true })
	_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
	fp := takeFootprint()
	ctx := testCtx(t)
	c := dial(t, "ws://"+addr, nil)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	sizes := []int{1, 2, 125, 126, 127, 128, 1000, bufSize - 1, bufSize, bufSize + 1, 65535, 65536, 65537, 100000, 200 << 10}
	for range 30 {
		sizes = append(sizes, 1+rng.IntN(200<<10))
	}
	msgs := make([][]byte, len(sizes))
	for i, n := range sizes {
		msgs[i] = make([]byte, n)
		for j := range msgs[i] {
			msgs[i][j] = byte(rng.Uint32())
		}
	}
	sent := make(chan error, 1)
	go func() { // pipelined: the echoes come back while this writes
		for i, m := range msgs {
			step := len(m)
			if i%3 == 2 {
				step = 1 + len(m)/7 // several frames
			}
			w, err := c.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				sent <- err
				return
			}
			for b := m; len(b) > 0; b = b[min(step, len(b)):] {
				w.Write(b[:min(step, len(b))])
			}
			if err := w.Close(); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	total := 0
	for i, m := range msgs {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(got, m) {
			t.Fatalf("echo %d: %v of %d bytes, want the %d bytes sent", i, typ, len(got), len(m))
		}
		total += len(m)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	got := node.Msgs()
	for i, m := range msgs {
		if i >= len(got) || !got[i].equal(newRecMsg(websocket.MessageBinary, m)) {
			t.Fatalf("node received %d messages, want the %d sent, byte-exact (first difference at %d)", len(got), len(msgs), i)
		}
	}
	t.Logf("%d messages, %d KiB each way, byte-exact", len(msgs), total>>10)
	c.Close(websocket.StatusNormalClosure, "")
	if code := node.end(t); code != websocket.StatusNormalClosure {
		t.Errorf("node's connection ended with %v, want the client's 1000", code)
	}
	msgs = nil
	fp.settle(t, heapSlack)
}

// TestHostileStalledFrame: a client that declares a 1 GiB frame and then
// sends nothing holds the gateway's reader inside the frame. The declared
// length alone does not trip ReadLimit (coder/websocket counts the bytes it
// reads), so unanswered pings are what drop it; the node gets 1001 and
// nothing else.
func TestHostileStalledFrame(t *testing.T) {
	node := newRecNode(t, nil)
	_, addr := serveGateway(t, node.URL(), &Options{PingInterval: 200 * time.Millisecond, ReadLimit: 1 << 10}, time.Second, nil)
	fp := takeFootprint()
	c := dialRaw(t, addr, "")
	start := time.Now()
	header := []byte{0x82, 0xff, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 2, 3, 4} // binary, masked, 1 GiB
	if _, err := c.Write(append(header, 'x')); err != nil {
		t.Fatal(err)
	}
	if code := c.readClose(t); code != -1 && code != int(websocket.StatusGoingAway) {
		t.Errorf("client got close code %d, want the connection dropped", code)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("dropped after %v, want about two PingIntervals", d)
	}
	if code := node.end(t); code != websocket.StatusGoingAway {
		t.Errorf("node's connection ended with %v, want 1001", code)
	}
	if m := node.Msgs(); len(m) != 0 {
		t.Errorf("node received %v, want nothing", m)
	}
	c.Close()
	fp.settle(t, heapSlack)
}

// TestHostileSlowFragments: a client that sends one message as slow
// fragments, answering pings between them, is within its rights: the
// gateway's pings to the node must not wait behind the message, or the
// node would look dead (the client closed with 1012, the node marked
// unhealthy) at a client's whim.
func TestHostileSlowFragments(t *testing.T) {
	node := newRecNode(t, nil)
	_, addr := serveGateway(t, node.URL(), &Options{PingInterval: 100 * time.Millisecond}, time.Second, nil)
	fp := takeFootprint()
	ctx := testCtx(t)
	c := dial(t, "ws://"+addr, nil)
	closed := c.CloseRead(ctx) // answers the gateway's pings
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 8 {
		part := fmt.Appendf(nil, "fragment %d;", i)
		want = append(want, part...)
		if _, err := w.Write(part); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to receive the message", func() bool { return len(node.Msgs()) == 1 || closed.Err() != nil })
	if closed.Err() != nil {
		t.Fatalf("the gateway closed the client while it sent fragments and answered pings")
	}
	if m := node.Msgs(); !m[0].equal(newRecMsg(websocket.MessageText, want)) {
		t.Errorf("node received %v, want %q", m[0], want)
	}
	c.Close(websocket.StatusNormalClosure, "")
	node.end(t)
	fp.settle(t, heapSlack)
}
