package wssproxy

import (
	"net"
	"sync"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// gatherMax bounds the bytes a gather holds back before writing.
const gatherMax = 64 << 10

// gather is the write side of one socket. The copier that reads the other
// socket owns it: it appends the frames of everything one read brought
// and writes them with one call (one syscall, and for a client one TLS
// record) before its next read could block, so a burst of small messages
// (a fan-out of new heads, a client pipelining calls) costs one write, as
// in nginx and HAProxy. Only whole frames are ever appended, so anyone
// else may write a control frame between two of them: pongs, pings and
// close frames go straight out after what is held. A data message from
// anyone but the owner (the gateway's own reply to a client) waits until
// the owner's message in progress has ended.
//
// The buffer comes from a pool while bytes are held; an idle gather holds
// none.
type gather struct {
	conn  net.Conn
	stats *dirStats // writes to this side, for the write-stall check

	mu     sync.Mutex
	ended  sync.Cond // on mu: the owner's message ended, or the gather closed
	buf    *[]byte   // held bytes, from gatherPool; nil when none
	err    error     // sticky write error
	inMsg  bool      // the owner is inside a fragmented message
	after  []byte    // a close frame to send once the message in progress ends
	closed bool      // a close frame went out (or the side was dropped): nothing more
}

func newGather(c net.Conn, st *dirStats) *gather {
	g := &gather{conn: c, stats: st}
	g.ended.L = &g.mu
	return g
}

// put appends the owner's bytes of whole frames; msgEnd says whether they
// end the owner's message.
func (g *gather) put(p []byte, msgEnd bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	err := g.appendLocked(p)
	g.endLocked(msgEnd)
	return err
}

// putFrame appends the owner's frame h with payload p, masking a copy of
// p with h.Key if mask is set (p is then unmasked; otherwise p goes as it
// is, whether or not h is masked).
func (g *gather) putFrame(h wsframe.Header, p []byte, mask bool, msgEnd bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	err := g.headerLocked(h)
	if !mask && err == nil {
		err = g.appendLocked(p)
	}
	for pos := 0; mask && len(p) > 0 && err == nil; {
		if g.buf == nil || len(*g.buf) == gatherMax {
			if err = g.flushLocked(); err != nil {
				break
			}
			g.buf = gatherPool.Get().(*[]byte)
		}
		b := *g.buf
		n := min(len(p), gatherMax-len(b))
		b = append(b, p[:n]...)
		pos = wsframe.Mask(h.Key, pos, b[len(b)-n:])
		*g.buf, p = b, p[n:]
	}
	g.endLocked(msgEnd)
	return err
}

// headerLocked appends a frame header, in the buffer itself (a header
// on the stack would escape through conn.Write).
func (g *gather) headerLocked(h wsframe.Header) error {
	if g.err != nil {
		return g.err
	}
	if g.buf != nil && len(*g.buf)+wsframe.MaxHeaderLen > gatherMax {
		if err := g.flushLocked(); err != nil {
			return err
		}
	}
	if g.buf == nil {
		g.buf = gatherPool.Get().(*[]byte)
	}
	*g.buf = wsframe.AppendHeader(*g.buf, h)
	return nil
}

func (g *gather) endLocked(msgEnd bool) {
	g.inMsg = !msgEnd
	if msgEnd {
		if g.after != nil {
			g.appendLocked(g.after)
			g.flushLocked()
			g.after, g.closed = nil, true
		}
		g.ended.Broadcast()
	}
}

func (g *gather) appendLocked(p []byte) error {
	if g.err != nil {
		return g.err
	}
	if g.buf != nil && len(*g.buf)+len(p) > gatherMax {
		if err := g.flushLocked(); err != nil {
			return err
		}
	}
	if len(p) >= gatherMax/2 && g.buf == nil {
		_, err := g.send(p)
		return err
	}
	if g.buf == nil {
		g.buf = gatherPool.Get().(*[]byte)
	}
	*g.buf = append(*g.buf, p...)
	return nil
}

// flush writes what is held.
func (g *gather) flush() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.flushLocked()
}

func (g *gather) flushLocked() error {
	if g.buf == nil {
		return g.err
	}
	_, err := g.send(*g.buf)
	*g.buf = (*g.buf)[:0]
	gatherPool.Put(g.buf)
	g.buf = nil
	return err
}

// send writes to the socket, counted for the write-stall check.
func (g *gather) send(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	g.stats.writeStart.Add(1)
	n, err := g.conn.Write(p)
	g.stats.writeDone.Add(1)
	if err != nil {
		g.err = err
	}
	return n, err
}

// control writes a whole control frame (a pong, a ping) after what is
// held, unless a close frame has gone out.
func (g *gather) control(frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	if err := g.appendLocked(frame); err != nil {
		return err
	}
	return g.flushLocked()
}

// message writes a whole data frame for someone other than the owner,
// once the owner's message in progress has ended. It is dropped once a
// close frame is sent or queued.
func (g *gather) message(frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.inMsg && !g.closed && g.after == nil {
		g.ended.Wait()
	}
	if g.closed || g.after != nil {
		return nil
	}
	if err := g.appendLocked(frame); err != nil {
		return err
	}
	return g.flushLocked()
}

// close writes a close frame after what is held, at once, unless one has
// gone out already; nothing is written after it.
func (g *gather) close(frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed, g.after = true, nil
	defer g.ended.Broadcast()
	if err := g.appendLocked(frame); err != nil {
		return err
	}
	return g.flushLocked()
}

// closeAfterMessage writes a close frame once the owner's message in
// progress (if any) has ended: the owner's later messages, and messages
// from others, are dropped.
func (g *gather) closeAfterMessage(frame []byte) error {
	g.mu.Lock()
	if g.closed || g.after != nil {
		g.mu.Unlock()
		return nil
	}
	if g.inMsg {
		g.after = frame
		g.ended.Broadcast() // others' messages waiting are now dropped
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.close(frame)
}

// drop marks the side gone without a close frame and frees what is held.
func (g *gather) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.buf != nil {
		*g.buf = (*g.buf)[:0]
		gatherPool.Put(g.buf)
		g.buf = nil
	}
	g.ended.Broadcast()
}
