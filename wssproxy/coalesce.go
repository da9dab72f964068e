package wssproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// coalesceMax bounds the bytes a sideConn holds back before writing.
const coalesceMax = 64 << 10

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceMax); return &b }}

// sideConn is one side's socket (client or node) under its websocket.Conn.
// It coalesces writes: a message its copier writes (held, for the length
// of that write) is gathered rather than sent as one syscall (and, for a
// client, one TLS record) of its own, and what is gathered goes out when
// the other side's socket has nothing more buffered to read, that is, just
// before the copier feeding this side would block. So a burst of small
// messages (a fan-out of new heads, a client pipelining calls) costs one
// write, as in nginx and HAProxy, while a lone message goes out at once,
// its copier going straight back to a read that flushes first. Writes by
// anyone else (pongs, close frames, the gateway's own replies) send what
// is gathered and then themselves.
type sideConn struct {
	net.Conn
	peer  *sideConn // whose held writes to send before this side's reads block
	stats *dirStats // writes to this side, for the write-stall check

	mu   sync.Mutex
	held bool
	buf  *[]byte // pending bytes, from coalescePool; nil when none
	err  error   // sticky write error
}

// Read sends what was held back for the other direction before it can
// block waiting for this side.
func (s *sideConn) Read(p []byte) (int, error) {
	if s.peer != nil {
		s.peer.flush()
	}
	return s.Conn.Read(p)
}

// Write holds p back while the copier holds the connection, and otherwise
// sends what was held and p.
func (s *sideConn) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if s.held && (s.buf == nil || len(*s.buf)+len(p) <= coalesceMax) && len(p) < coalesceMax {
		if s.buf == nil {
			s.buf = coalescePool.Get().(*[]byte)
		}
		*s.buf = append(*s.buf, p...)
		return len(p), nil
	}
	if err := s.flushLocked(); err != nil {
		return 0, err
	}
	n, err := s.send(p)
	return n, err
}

// hold makes writes gather (true) or go straight out (false).
func (s *sideConn) hold(h bool) {
	s.mu.Lock()
	s.held = h
	s.mu.Unlock()
}

func (s *sideConn) flush() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func (s *sideConn) flushLocked() error {
	if s.buf == nil {
		return s.err
	}
	_, err := s.send(*s.buf)
	*s.buf = (*s.buf)[:0]
	coalescePool.Put(s.buf)
	s.buf = nil
	return err
}

// send writes to the socket, counted for the write-stall check.
func (s *sideConn) send(p []byte) (int, error) {
	if s.stats != nil {
		s.stats.writeStart.Add(1)
		defer s.stats.writeDone.Add(1)
	}
	n, err := s.Conn.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Buffer sizes under the client's websocket.Conn. The sideConn gathers
// writes itself, so the bufio.Writer only needs to hold a frame header and
// a small message; reads of large payloads bypass the bufio.Reader.
// Smaller than net/http's 4 KiB each: they are held for every idle
// connection.
const (
	clientReadBuf  = 2 << 10
	clientWriteBuf = 1 << 10
)

// hijackCapture wraps the client's connection that websocket.Accept
// hijacks in a sideConn, and keeps it for drain and kill.
type hijackCapture struct {
	http.ResponseWriter
	side *sideConn
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // the 101, if still buffered
		c.Close()
		return nil, nil, err
	}
	h.side = &sideConn{Conn: c}
	// Bytes the client sent right after its handshake may sit in net/http's
	// reader: hand them over buffered in ours (the websocket package reads
	// what the reader holds first, then the connection).
	early := bytes.Clone(must(brw.Reader.Peek(brw.Reader.Buffered())))
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), h.side), max(clientReadBuf, len(early)))
	if len(early) > 0 {
		br.Peek(len(early))
	}
	return h.side, bufio.NewReadWriter(br, bufio.NewWriterSize(h.side, clientWriteBuf)), nil
}

func must(b []byte, _ error) []byte { return b }

// nodeSlot receives, through the dial's context, the node's connection
// as upgradeTransport dials it.
type nodeSlot struct{ side *sideConn }

type nodeSlotKey struct{}

// upgradeTransport is the http.RoundTripper of WebSocket dials to nodes:
// it performs the upgrade request on a new connection of its own, wrapped
// in a sideConn, and returns the connection itself as the 101 response's
// body. Unlike http.Transport it keeps no buffers or state of its own for
// the life of the WebSocket.
type upgradeTransport struct {
	dialer      *net.Dialer
	dialTimeout time.Duration
	tls         *tls.Config // for wss://; nil: system roots
}

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, side, err := t.dial(ctx, req.URL)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := upgradeExchange(conn, req)
	if !stop() && err == nil { // ctx ended during the exchange
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	if slot, ok := ctx.Value(nodeSlotKey{}).(*nodeSlot); ok {
		slot.side = side
	}
	return resp, nil
}

// dial connects to u's host, with TLS for https.
func (t *upgradeTransport) dial(ctx context.Context, u *url.URL) (net.Conn, *sideConn, error) {
	dctx, cancel := context.WithTimeout(ctx, t.dialTimeout)
	defer cancel()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[bool]string{true: "443", false: "80"}[u.Scheme == "https"]
	}
	raw, err := t.dialer.DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, nil, err
	}
	side := &sideConn{Conn: raw}
	if u.Scheme != "https" {
		return side, side, nil
	}
	cfg := t.tls.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(side, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return tc, side, nil
}

// upgradeExchange sends the upgrade request and reads the response. After a 101
// the body is the connection (with any bytes read past the headers first);
// otherwise it is the response's own body, and closing it closes conn.
func upgradeExchange(conn net.Conn, req *http.Request) (*http.Response, error) {
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 1<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &upgradedBody{Reader: resp.Body, Writer: conn, conn: conn}
		return resp, nil
	}
	var r io.Reader = conn
	if n := br.Buffered(); n > 0 {
		r = io.MultiReader(bytes.NewReader(bytes.Clone(must(br.Peek(n)))), conn)
	}
	resp.Body = &upgradedBody{Reader: r, Writer: conn, conn: conn}
	return resp, nil
}

// upgradedBody is a response body that is also the connection's writer,
// as the websocket package needs of a 101 response.
type upgradedBody struct {
	io.Reader
	io.Writer
	conn net.Conn
}

func (b *upgradedBody) Close() error { return b.conn.Close() }
