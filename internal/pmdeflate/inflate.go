package pmdeflate

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ErrTooBig means a message inflates to more than the limit; the relay
// closes with 1009 (message too big).
var ErrTooBig = errors.New("pmdeflate: decompressed message over the read limit")

// ErrCorrupt means a compressed message is not valid DEFLATE data; the
// relay closes with 1007 (invalid payload data).
var ErrCorrupt = errors.New("pmdeflate: invalid compressed data")

// readerPool holds idle decompressors (flate readers, about 40 KB each).
var readerPool sync.Pool

// end follows a message: the four bytes its sender stripped (RFC 7692
// section 7.2.2) and an empty final stored block, so that a whole message
// ends the stream with io.EOF and a truncated one with an error.
var end = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Inflater inflates the compressed messages one connection receives, one
// at a time. Its decompressor comes from a pool for each message. If
// p.ClientNoContextTakeover is false, a client may refer to the messages
// before, so the Inflater keeps the last 2^window bytes it inflated. An
// Inflater is used by one goroutine at a time.
type Inflater struct {
	// Alloc, if not nil, returns a buffer of at least n bytes' capacity
	// (and length 0) for Inflate when dst has too little room: from the
	// caller's pool, say. If nil, Inflate grows dst as append does.
	Alloc func(n int) []byte

	size   int    // the window kept with context takeover, else 0
	window []byte // the last size bytes inflated (fewer at first)
	src    source
}

// NewInflater returns the decompressor of a connection that negotiated p.
func NewInflater(p Params) *Inflater {
	f := &Inflater{}
	if !p.ClientNoContextTakeover {
		bits := p.ClientMaxWindowBits
		if bits == 0 {
			bits = 15
		}
		f.size = 1 << bits
	}
	return f
}

// Inflate appends the message that the compressed payload msg (a whole
// message, its frames' payloads joined) inflates to, to dst. If it would
// be longer than limit bytes (limit < 0: no limit), Inflate stops as soon
// as it has limit+1 bytes and returns ErrTooBig, whatever the compression
// ratio: the message is inflated into pooled chunks, which hold at most
// limit+1 bytes, and copied to dst only once it is known to fit. Invalid
// data returns an error wrapping ErrCorrupt. On error dst is returned as
// it came and, with context takeover, the connection must end (its window
// no longer matches the client's).
func (f *Inflater) Inflate(dst, msg []byte, limit int64) ([]byte, error) {
	f.src = source{msg: msg}
	defer func() { f.src = source{} }()
	fr, _ := readerPool.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReaderDict(&f.src, f.window)
	} else if err := fr.(flate.Resetter).Reset(&f.src, f.window); err != nil {
		readerPool.Put(fr)
		return dst, err
	}
	defer readerPool.Put(fr)

	var cs chunks
	defer cs.free()
	for {
		c := cs.space()
		if limit >= 0 && int64(len(c)) > limit+1-cs.n {
			c = c[:limit+1-cs.n]
		}
		n, err := fr.Read(c)
		cs.n += int64(n)
		if limit >= 0 && cs.n > limit {
			return dst, ErrTooBig
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	start := len(dst)
	if n := int(cs.n); cap(dst)-len(dst) < n && f.Alloc != nil {
		dst = append(f.Alloc(len(dst) + n)[:0], dst...)
	} else {
		dst = slices.Grow(dst, n)
	}
	for i, c := range cs.list {
		dst = append(dst, c[:min(chunkSize, cs.n-int64(i)*chunkSize)]...)
	}
	f.keep(dst[start:])
	return dst, nil
}

// chunkSize is the size of the pooled pieces a message is inflated into.
const chunkSize = 32 << 10

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// chunks holds a message being inflated: n bytes in pooled chunks.
type chunks struct {
	list []*[chunkSize]byte
	n    int64
}

// space returns the free part of the last chunk, taking a new one if it
// is full.
func (cs *chunks) space() []byte {
	used := int(cs.n % chunkSize)
	if used == 0 && int64(len(cs.list))*chunkSize == cs.n {
		cs.list = append(cs.list, chunkPool.Get().(*[chunkSize]byte))
	}
	return cs.list[len(cs.list)-1][used:]
}

func (cs *chunks) free() {
	for _, c := range cs.list {
		chunkPool.Put(c)
	}
	cs.list = nil
}

// keep adds an inflated message to the window.
func (f *Inflater) keep(msg []byte) {
	if f.size == 0 {
		return
	}
	if f.window == nil {
		f.window = make([]byte, 0, f.size)
	}
	if len(msg) >= f.size {
		f.window = append(f.window[:0], msg[len(msg)-f.size:]...)
		return
	}
	if over := len(f.window) + len(msg) - f.size; over > 0 {
		f.window = f.window[:copy(f.window, f.window[over:])]
	}
	f.window = append(f.window, msg...)
}

// IdleBytes is what the Inflater holds between messages: its window with
// context takeover, else nothing.
func (f *Inflater) IdleBytes() int { return cap(f.window) }

// source reads a message followed by end, as an io.ByteReader so that
// flate reads it without a bufio.Reader of its own.
type source struct {
	msg []byte
	i   int // position in msg, then len(msg)+position in end
}

func (s *source) Read(p []byte) (int, error) {
	if s.i < len(s.msg) {
		n := copy(p, s.msg[s.i:])
		s.i += n
		return n, nil
	}
	j := s.i - len(s.msg)
	if j >= len(end) {
		return 0, io.EOF
	}
	n := copy(p, end[j:])
	s.i += n
	return n, nil
}

func (s *source) ReadByte() (byte, error) {
	if s.i < len(s.msg) {
		s.i++
		return s.msg[s.i-1], nil
	}
	j := s.i - len(s.msg)
	if j >= len(end) {
		return 0, io.EOF
	}
	s.i++
	return end[j], nil
}
