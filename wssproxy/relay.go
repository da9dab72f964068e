package wssproxy

import (
	"errors"
	"math/rand/v2"
	"net"
	"unicode/utf8"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// The relay passes frames between the client's and the node's sockets
// after both handshakes, with no WebSocket library on the way. A frame
// that arrives whole goes out byte for byte (a client's frames are masked
// and stay so on their way to the node, as RFC 6455 asks of a client); a
// frame longer than the read buffer is passed on in fragments as it
// arrives, so memory stays bounded whatever a message's size. The gateway
// unmasks a copy only where it must read: a message the session judges
// (which it collects whole), and a client's text message, whose UTF-8 it
// checks. It builds a frame only when the session changes a message.

const (
	// readBufSize is the pooled read buffer a copier uses while data is in
	// flight; frames up to about this size pass whole.
	readBufSize = 32 << 10
	// idleReadSize is the copier's own buffer, which it blocks on when
	// nothing is in flight, so an idle connection holds no pooled buffer.
	idleReadSize = 512
)

// socket is one side's connection once its handshake is done.
type socket struct {
	conn  net.Conn
	side  side
	early []byte  // bytes read past the handshake, relayed first
	out   *gather // writes to this side
}

// copier relays one direction: it reads frames from src and writes them
// to dst, as httputil's switchProtocolCopier does bytes.
type copier struct {
	pc       *proxyConn
	dir      direction
	src, dst *socket
	masked   bool  // frames read are masked, as must be frames written to dst
	limit    int64 // message size limit; -1 for none

	// idle is from idlePool while the copier runs (park.go)
	idle   *[idleReadSize]byte
	buf    []byte  // idle[:] or *pooled
	pooled *[]byte // from readPool while data is in flight
	r, w   int     // unread bytes are buf[r:w]
	rerr   error   // a read error that came with data, returned after it
	full   bool    // the last read filled the buffer

	hook     *hookConn // src's socket, if it says when it runs dry; else nil
	flushErr error     // a write to dst that failed in onBlock

	frag   wsframe.Fragments
	msgLen int64       // payload bytes of the message so far
	whole  bool        // the message is collected for the session
	msg    []byte      // the collected payload (unmasked), from bigPools
	text   *utf8Stream // checks a client's text message passed through; nil if none
	utf    utf8Stream

	// permessage-deflate, if the client negotiated it (deflate.go)
	compressed bool          // the client's message in progress is compressed
	deflating  bool          // the node's message in progress goes compressed
	zout       deflateFrames // its frames, when passed through

	// a frame longer than the buffer, being passed in pieces
	cur   wsframe.Header
	rem   int64 // its payload bytes still to come
	first bool  // the next piece is the frame's first

	parking // park.go
}

func newCopier(pc *proxyConn, dir direction, src, dst *socket) *copier {
	c := &copier{pc: pc, dir: dir, src: src, dst: dst, masked: dir == toNode, limit: pc.p.readLimit()}
	c.hook = readHook(src.conn)
	c.initParking()
	return c
}

// run relays until an error, ends the connection with it, and frees the
// copier's buffers; or until the copier parks (park.go), to be run again
// when there is more to do.
func (c *copier) run() {
	err := c.runUntilParked()
	if err == nil {
		return
	}
	defer c.pc.copierDone()
	defer c.putIdle()
	c.pc.finish(err)
	c.release()
	var ce wsframe.CloseError
	if !errors.As(err, &ce) {
		// src may have been sent a close frame: read (and drop) what it
		// sends until it closes or its closeTimeout deadline passes, so
		// that its unread bytes do not turn our close into a reset.
		for {
			if _, err := c.src.conn.Read(c.idle[:]); err != nil {
				break
			}
		}
	}
}

func (c *copier) loop() error {
	if e := c.src.early; len(e) > 0 {
		c.src.early = nil
		c.grow(len(e))
		c.w = copy(c.buf, e)
	}
	for {
		if err := c.process(); err != nil {
			return err
		}
		if err := c.read(); err != nil {
			return err
		}
	}
}

// grow switches to a pooled buffer holding at least n bytes, keeping the
// unread ones.
func (c *copier) grow(n int) {
	if c.pooled == nil && n <= readBufSize {
		c.pooled = readPool.Get().(*[]byte)
		c.w = copy(*c.pooled, c.buf[c.r:c.w])
		c.r, c.buf = 0, *c.pooled
	} else if n > len(c.buf) { // early bytes beyond a buffer: rare, not pooled
		b := make([]byte, n)
		c.w = copy(b, c.buf[c.r:c.w])
		c.r, c.buf = 0, b
	}
}

func (c *copier) release() {
	if c.pooled != nil {
		readPool.Put(c.pooled)
		c.pooled = nil
	}
	c.buf = c.idle[:]
	if c.msg != nil {
		putBig(c.msg)
		c.msg = nil
	}
	c.releaseDeflate()
}

// read reads more from src, after what is unread. The frames of
// everything read while src has more to give go out in one write: when
// src's socket says when it runs dry (a hookConn), onBlock sends them
// then; otherwise read sends them before every read that may block,
// except after one that filled its buffer while the socket already holds
// more (FIONREAD). With nothing unread and no frame in progress it reads
// into the copier's own small buffer rather than a pooled one, unless the
// last read filled its buffer (a burst: a fan-out of new heads, a client
// pipelining calls), so an idle connection holds no pooled buffer.
func (c *copier) read() error {
	if c.rerr != nil {
		return &sideError{c.src.side, c.rerr}
	}
	burst := c.full
	if c.hook == nil {
		burst = burst && pending(c.src.conn) > 0
		if !burst {
			if err := c.dst.out.flush(); err != nil {
				return &sideError{c.dst.side, err}
			}
		}
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	idle := c.w == 0 && c.rem == 0 && !burst
	switch {
	case idle:
		c.dropPooled()
	case c.pooled == nil:
		c.grow(readBufSize)
	case c.r > 0:
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	n, err := c.readSrc(c.buf[c.w:], idle)
	for n == 0 && err == errWouldBlock { // from onBlock: the socket ran dry
		if c.flushErr != nil {
			return &sideError{c.dst.side, c.flushErr}
		}
		c.dropPooled() // and block on the small buffer
		n, err = c.readSrc(c.buf[c.w:], c.w == 0 && c.rem == 0)
	}
	c.w += n
	c.full = c.w == len(c.buf)
	if n > 0 {
		c.rerr = err
		return nil
	}
	if err == errParked {
		return err
	}
	return &sideError{c.src.side, err}
}

// onBlock is src's hookConn's: src has nothing more to read, so what
// this copier gathered for dst goes out now. It asks the read to come
// back instead of waiting if the copier holds a pooled buffer it could
// let go of first.
func (c *copier) onBlock() bool {
	if err := c.dst.out.flush(); err != nil {
		c.flushErr = err
		return false
	}
	return c.pooled == nil || c.w != 0 || c.rem != 0
}

// dropPooled returns the pooled read buffer, which holds nothing unread,
// and goes back to the copier's own.
func (c *copier) dropPooled() {
	if c.pooled != nil {
		readPool.Put(c.pooled)
		c.pooled, c.buf = nil, c.idle[:]
	}
}

// process relays every frame the buffer holds whole, and what has come
// of a long one.
func (c *copier) process() error {
	for c.r < c.w {
		if c.rem > 0 {
			if ok, err := c.piece(); !ok || err != nil {
				return err
			}
			continue
		}
		h, n, err := wsframe.ParseHeader(c.buf[c.r:c.w])
		if err == wsframe.ErrShort {
			return nil
		}
		if err == nil {
			err = c.checkHeader(&h)
		}
		if err != nil {
			return c.protocolError(err)
		}
		total := int64(n) + h.Length
		have := int64(c.w - c.r)
		if h.Opcode.IsControl() {
			if total > have {
				return nil
			}
			c.r += int(total)
			if err := c.control(h, c.buf[c.r-int(h.Length):c.r]); err != nil {
				return err
			}
			continue
		}
		size := h.Length
		if h.Opcode == wsframe.OpContinuation {
			size += c.msgLen
		}
		if limit := c.frameLimit(&h); limit >= 0 && size > limit {
			return &sideError{c.src.side, errMessageTooBig}
		}
		if total > have && total <= readBufSize {
			return nil // wait for it whole
		}
		start, err := c.frag.Next(&h)
		if err != nil {
			return c.protocolError(err)
		}
		if start {
			c.startMessage(&h)
		}
		c.msgLen = size
		if total <= have {
			raw := c.buf[c.r : c.r+int(total)]
			c.r += int(total)
			if err := c.data(h, raw, raw[n:], h.Fin); err != nil {
				return err
			}
			continue
		}
		c.cur, c.rem, c.first = h, h.Length, true
		c.r += n
	}
	return nil
}

// piece passes on what has come of a long frame as a fragment of its own.
// A masked fragment ends on a multiple of 4 bytes, so that the next one
// starts in step with the frame's masking key, which it reuses: the bytes
// go as they came. It reports false when it needs more bytes.
func (c *copier) piece() (bool, error) {
	n := min(c.rem, int64(c.w-c.r))
	if n < c.rem && c.masked {
		n &^= 3
	}
	if n == 0 {
		return false, nil
	}
	p := c.buf[c.r : c.r+int(n)]
	c.r += int(n)
	c.rem -= n
	h := c.cur
	h.Length = n
	h.Fin = c.rem == 0 && c.cur.Fin
	if !c.first {
		h.Opcode = wsframe.OpContinuation
	}
	c.first = false
	return true, c.data(h, nil, p, h.Fin)
}

// startMessage sets up the handling of a new message, which starts with
// frame h: collected whole for the session (or to be inflated), or passed
// through (with a UTF-8 check of a client's text, or compressed for the
// client).
func (c *copier) startMessage(h *wsframe.Header) {
	op := h.Opcode
	c.msgLen = 0
	c.compressed = h.RSV&rsv1 != 0
	c.whole = c.pc.seesWhole(c.dir) || c.compressed
	c.text = nil
	c.startDeflate(h)
	if c.dir == toNode && op == wsframe.OpText && !c.whole {
		c.utf = utf8Stream{}
		c.text = &c.utf
	}
}

// data relays one data frame, or a piece of one (raw is nil), whose
// payload p is as it came. h is the header to send it under.
func (c *copier) data(h wsframe.Header, raw, p []byte, msgEnd bool) error {
	if c.whole {
		return c.collect(h, raw, p, msgEnd)
	}
	if c.deflating {
		return c.deflatePiece(p, msgEnd)
	}
	if c.text != nil && !c.checkText(h.Key, p, msgEnd) {
		return &sideError{sideClient, errBadUTF8}
	}
	var err error
	if raw != nil {
		err = c.dst.out.put(raw, msgEnd)
	} else {
		err = c.dst.out.putFrame(h, p, false, msgEnd)
	}
	if err != nil {
		return &sideError{c.dst.side, err}
	}
	st := &c.pc.stats[c.dir]
	st.bytes.Add(int64(len(p)))
	if msgEnd {
		st.msgs.Add(1)
	}
	return nil
}

// checkText checks the UTF-8 of a masked payload p (or piece), unmasking
// a copy in small steps.
func (c *copier) checkText(key [4]byte, p []byte, msgEnd bool) bool {
	var tmp [512]byte
	for pos := 0; pos < len(p); {
		n := copy(tmp[:], p[pos:])
		wsframe.Mask(key, pos, tmp[:n])
		if !c.text.write(tmp[:n]) {
			return false
		}
		pos += n
	}
	return !msgEnd || c.text.end()
}

// collect gathers a message the session must see whole. A message that is
// one frame, in the buffer whole, is read in place.
func (c *copier) collect(h wsframe.Header, raw, p []byte, msgEnd bool) error {
	if msgEnd && c.msg == nil && raw != nil {
		if c.masked {
			wsframe.Mask(h.Key, 0, p)
		}
		return c.deliver(p, raw, h.Key)
	}
	if c.msg == nil {
		c.msg = getBig(len(p))
	}
	c.msg = appendBig(c.msg, p)
	if c.masked {
		wsframe.Mask(h.Key, 0, c.msg[len(c.msg)-len(p):])
	}
	if !msgEnd {
		return nil
	}
	err := c.deliver(c.msg, nil, h.Key)
	putBig(c.msg)
	c.msg = nil
	return err
}

// deliver passes a whole message (unmasked) through the session. raw is
// its original frame, if it came as one; key its masking key, if any.
func (c *copier) deliver(msg, raw []byte, key [4]byte) error {
	op := c.frag.Opcode
	if c.compressed {
		plain, err := c.inflate(msg)
		if err != nil {
			return err
		}
		defer putBig(plain)
		msg, raw = plain, nil
		if c.pc.sess == nil { // no session reads it: on to the node, plain
			if op == wsframe.OpText && !utf8.Valid(msg) {
				return &sideError{sideClient, errBadUTF8}
			}
			return c.send(op, msg, msg, nil, key)
		}
	}
	if c.dir == toClient {
		return c.send(op, msg, c.pc.sess.nodeMessage(msg), raw, key)
	}
	if op == wsframe.OpText && !utf8.Valid(msg) {
		return &sideError{sideClient, errBadUTF8}
	}
	v := c.pc.sess.clientMessage(c.pc.ctx, msg)
	if v.close != nil {
		return &sideError{sideClient, v.close}
	}
	if v.reply != nil {
		f := wsframe.AppendHeader(make([]byte, 0, 10+len(v.reply)), wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: int64(len(v.reply))})
		if err := c.src.out.message(append(f, v.reply...)); err != nil {
			return &sideError{sideClient, err}
		}
	}
	if v.forward != nil {
		return c.send(op, msg, v.forward, raw, key)
	}
	return nil
}

// send writes message out to dst: the original frame raw if out is msg
// unchanged, else a new frame.
func (c *copier) send(op wsframe.Opcode, msg, out, raw []byte, key [4]byte) error {
	if c.dir == toClient && c.pc.dfl != nil && op == wsframe.OpText && c.pc.dfl.params.Compress(len(out)) {
		return c.sendCompressed(op, out)
	}
	var err error
	if raw != nil && len(out) == len(msg) && (len(out) == 0 || &out[0] == &msg[0]) {
		if c.masked {
			wsframe.Mask(key, 0, msg) // back as it came
		}
		err = c.dst.out.put(raw, true)
	} else {
		if c.masked && key == [4]byte{} {
			key = newMaskKey()
		}
		h := wsframe.Header{Fin: true, Opcode: op, Masked: c.masked, Key: key, Length: int64(len(out))}
		err = c.dst.out.putFrame(h, out, c.masked, true)
	}
	if err != nil {
		return &sideError{c.dst.side, err}
	}
	st := &c.pc.stats[c.dir]
	st.msgs.Add(1)
	st.bytes.Add(int64(len(out)))
	return nil
}

// control handles a control frame from src: a ping is answered, a pong
// noted for the keepalive, and a close frame answered and passed on as
// the reason the connection ends.
func (c *copier) control(h wsframe.Header, p []byte) error {
	if c.masked {
		wsframe.Mask(h.Key, 0, p)
	}
	back := c.src.out
	switch h.Opcode {
	case wsframe.OpPing:
		if err := back.control(wsframe.AppendControl(nil, wsframe.OpPong, p, !c.masked, newMaskKey())); err != nil {
			return &sideError{c.src.side, err}
		}
	case wsframe.OpPong:
		c.pc.ka.pong(c.src.side, p)
	case wsframe.OpClose:
		ce, err := wsframe.ParseClose(p)
		if errors.Is(err, wsframe.ErrCloseReasonUTF8) {
			return &sideError{c.src.side, errBadUTF8}
		}
		if err != nil {
			return c.protocolError(err)
		}
		if c.pc.ending.Load() {
			return &sideError{c.src.side, ce} // the answer to the gateway's close frame
		}
		back.close(wsframe.AppendClose(nil, ce.Code, ce.Reason, !c.masked, newMaskKey()))
		return &sideError{c.src.side, ce}
	}
	return nil
}

func (c *copier) protocolError(err error) error {
	var pe wsframe.ProtocolError
	if !errors.As(err, &pe) {
		pe = wsframe.ProtocolError(err.Error())
	}
	return &sideError{c.src.side, &protocolError{pe}}
}

// newMaskKey returns a masking key for a frame the gateway writes to a
// node.
func newMaskKey() [4]byte {
	u := rand.Uint32()
	return [4]byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)}
}
