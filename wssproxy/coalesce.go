package wssproxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
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
	// The websocket package reads what brw.Reader holds first, then the
	// connection; writes go through the sideConn.
	return h.side, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(h.side)), nil
}

// nodeSlot receives, through the dial's context, the node's connection
// as the transport dials it.
type nodeSlot struct{ side *sideConn }

type nodeSlotKey struct{}

// dialNodeConn is the WebSocket transport's DialContext: it wraps the
// node's connection in a sideConn.
func dialNodeConn(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s := &sideConn{Conn: c}
		if slot, ok := ctx.Value(nodeSlotKey{}).(*nodeSlot); ok {
			slot.side = s
		}
		return s, nil
	}
}
