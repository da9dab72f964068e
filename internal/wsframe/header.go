package wsframe

import (
	"encoding/binary"
	"errors"
)

// Opcode is a frame's opcode (RFC 6455 section 5.2).
type Opcode byte

// The opcodes RFC 6455 defines; the others are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (close, ping, pong or
// a reserved one, 0xB to 0xF).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// Known reports whether op is one RFC 6455 defines.
func (op Opcode) Known() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// MaxHeaderLen is the longest frame header: 2 bytes, a 64-bit length and
// a masking key.
const MaxHeaderLen = 14

// Header is a frame's header.
type Header struct {
	Fin    bool
	RSV    byte // the three reserved bits, as 0x40 (RSV1), 0x20, 0x10
	Opcode Opcode
	Masked bool
	Key    [4]byte // the masking key, if Masked
	Length int64   // payload length
}

// ErrShort means the buffer holds only part of a header.
var ErrShort = errors.New("wsframe: incomplete header")

// ErrLength means a 64-bit payload length has its top bit set (RFC 6455
// section 5.2 forbids it). A length not in its shortest form is accepted,
// as most implementations do.
var ErrLength = errors.New("wsframe: invalid payload length")

// ParseHeader parses the header at the start of b and returns it with its
// length in bytes. It returns ErrShort if b ends inside the header, and
// ErrLength for a negative 64-bit length. It checks nothing else: the
// caller judges RSV bits, opcodes and control-frame rules, which depend
// on which side sent the frame (see [Header.Check]).
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrShort
	}
	h := Header{
		Fin:    b[0]&0x80 != 0,
		RSV:    b[0] & 0x70,
		Opcode: Opcode(b[0] & 0x0f),
		Masked: b[1]&0x80 != 0,
	}
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return Header{}, 0, ErrShort
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return Header{}, 0, ErrShort
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return Header{}, 0, ErrLength
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return Header{}, 0, ErrShort
		}
		copy(h.Key[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// HeaderLen is the length of the header AppendHeader writes for h.
func HeaderLen(h Header) int {
	n := 2
	switch {
	case h.Length > 0xffff:
		n = 10
	case h.Length > 125:
		n = 4
	}
	if h.Masked {
		n += 4
	}
	return n
}

// AppendHeader appends h, with its length in the shortest form, to b.
func AppendHeader(b []byte, h Header) []byte {
	b0 := byte(h.Opcode&0x0f) | h.RSV&0x70
	if h.Fin {
		b0 |= 0x80
	}
	var m byte
	if h.Masked {
		m = 0x80
	}
	switch {
	case h.Length > 0xffff:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(h.Length))
	case h.Length > 125:
		b = append(b, b0, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.Length))
	default:
		b = append(b, b0, m|byte(h.Length))
	}
	if h.Masked {
		b = append(b, h.Key[:]...)
	}
	return b
}

// ProtocolError is a frame that breaks RFC 6455; the connection must be
// failed with status 1002.
type ProtocolError string

func (e ProtocolError) Error() string { return "wsframe: protocol error: " + string(e) }

// Check applies the rules RFC 6455 section 5 sets for every frame with no
// extension negotiated: reserved bits clear, a known opcode, and a control
// frame that is unfragmented and at most 125 bytes. masked says whether
// the frame must be masked (true for frames a server reads, false for
// frames a client reads).
func (h *Header) Check(masked bool) error {
	switch {
	case h.Masked != masked && masked:
		return ProtocolError("client frame is not masked")
	case h.Masked != masked:
		return ProtocolError("server frame is masked")
	case h.RSV != 0:
		return ProtocolError("reserved bits set without an extension")
	case !h.Opcode.Known():
		return ProtocolError("reserved opcode")
	case h.Opcode.IsControl() && !h.Fin:
		return ProtocolError("fragmented control frame")
	case h.Opcode.IsControl() && h.Length > MaxControlPayload:
		return ProtocolError("control frame payload over 125 bytes")
	}
	return nil
}

// Fragments follows the fragmentation rules of RFC 6455 section 5.4 for
// one direction of a connection. The zero value expects a new message.
type Fragments struct {
	inMessage bool
	Opcode    Opcode // the current message's opcode (text or binary)
}

// Next accepts a data frame's header and reports whether it starts a new
// message, or fails with a ProtocolError. Control frames may come between
// fragments and must not be passed to Next.
func (f *Fragments) Next(h *Header) (start bool, err error) {
	switch {
	case h.Opcode == OpContinuation && !f.inMessage:
		return false, ProtocolError("continuation frame with no message to continue")
	case h.Opcode != OpContinuation && f.inMessage:
		return false, ProtocolError("new message inside a fragmented message")
	}
	start = h.Opcode != OpContinuation
	if start {
		f.Opcode = h.Opcode
	}
	f.inMessage = !h.Fin
	return start, nil
}

// InMessage reports whether a fragmented message is in progress.
func (f *Fragments) InMessage() bool { return f.inMessage }
