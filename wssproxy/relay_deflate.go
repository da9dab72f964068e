package wssproxy

import (
	"errors"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/pmdeflate"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// The relay's side of permessage-deflate (RFC 7692), when a client
// negotiated it. A client's compressed message (RSV1 on its first frame)
// is collected whole, compressed, then inflated within the read limit
// before the session reads it; the node gets it plain. A node's text
// message of the threshold or more goes to the client compressed: whole
// if the session collected it, else as it passes, in frames of its own.

// errBadDeflate closes a client whose compressed message does not inflate
// with 1007 (invalid payload data), as Node's ws does.
var errBadDeflate = &policyClose{websocket.StatusInvalidFramePayloadData, "invalid compressed message"}

// checkHeader applies RFC 6455's frame rules, with RSV1 allowed on the
// first frame of a client's data message if the client negotiated
// permessage-deflate (section 6 of RFC 7692); elsewhere it is a protocol
// error, closed with 1002.
func (c *copier) checkHeader(h *wsframe.Header) error {
	if h.RSV != rsv1 || c.dir != toNode || c.pc.dfl == nil {
		return h.Check(c.masked)
	}
	if h.Opcode != wsframe.OpText && h.Opcode != wsframe.OpBinary {
		return wsframe.ProtocolError("RSV1 set on a control or continuation frame")
	}
	plain := *h
	plain.RSV = 0
	return plain.Check(c.masked)
}

// frameLimit is the size limit on the message frame h is part of: the
// read limit, a little over it for a compressed message, whose inflated
// size the limit then bounds.
func (c *copier) frameLimit(h *wsframe.Header) int64 {
	if h.RSV&rsv1 != 0 || (h.Opcode == wsframe.OpContinuation && c.compressed) {
		return inflateBound(c.limit)
	}
	return c.limit
}

// startDeflate decides whether a node's message passed through goes to
// the client compressed: a text message whose first frame is at the
// threshold or more, or that comes in several frames.
func (c *copier) startDeflate(h *wsframe.Header) {
	c.deflating = false
	dc := c.pc.dfl
	if c.dir != toClient || dc == nil || c.whole || h.Opcode != wsframe.OpText {
		return
	}
	if h.Fin && !dc.params.Compress(int(min(h.Length, 1<<30))) {
		return
	}
	c.zout = deflateFrames{c: c, op: h.Opcode}
	// Begin fails only if a message were in progress, which the relay's
	// fragmentation check rules out; the message would then go plain.
	c.deflating = dc.out.Begin(&c.zout) == nil
}

// deflatePiece compresses a piece of a node's message passed through.
func (c *copier) deflatePiece(p []byte, msgEnd bool) error {
	out := c.pc.dfl.out
	if _, err := out.Write(p); err != nil {
		return asSideError(c.dst.side, err)
	}
	if !msgEnd {
		return nil
	}
	c.deflating = false
	if err := out.End(); err != nil {
		return asSideError(c.dst.side, err)
	}
	if err := c.zout.finish(); err != nil {
		return err
	}
	c.pc.stats[c.dir].msgs.Add(1)
	return nil
}

// sendCompressed sends a whole message to the client compressed, as one
// frame.
func (c *copier) sendCompressed(op wsframe.Opcode, msg []byte) error {
	z, err := c.pc.dfl.out.Append(getBig(len(msg)/2), msg)
	if err != nil {
		putBig(z)
		return &sideError{sideGateway, err}
	}
	h := wsframe.Header{Fin: true, RSV: rsv1, Opcode: op, Length: int64(len(z))}
	err = c.dst.out.putFrame(h, z, false, true)
	putBig(z)
	if err != nil {
		return &sideError{c.dst.side, err}
	}
	st := &c.pc.stats[c.dir]
	st.msgs.Add(1)
	st.bytes.Add(int64(len(z)))
	return nil
}

// inflate inflates a client's compressed message (unmasked) into a
// pooled buffer, within the read limit.
func (c *copier) inflate(z []byte) ([]byte, error) {
	plain, err := c.pc.dfl.in.Inflate(nil, z, c.limit) // in a buffer of getBig's
	switch {
	case errors.Is(err, pmdeflate.ErrTooBig):
		putBig(plain)
		return nil, &sideError{sideClient, errMessageTooBig}
	case err != nil:
		putBig(plain)
		return nil, &sideError{sideClient, errBadDeflate}
	}
	return plain, nil
}

// releaseDeflate frees what a copier holds for compression when it ends.
func (c *copier) releaseDeflate() {
	c.zout.release()
	if c.dir == toClient && c.pc.dfl != nil {
		c.pc.dfl.out.Close()
	}
	c.deflating = false
}

// asSideError returns err if it already says which side failed (a write
// to the client, from inside the compressor), else blames side.
func asSideError(s side, err error) error {
	var se *sideError
	if errors.As(err, &se) {
		return err
	}
	return &sideError{s, err}
}
