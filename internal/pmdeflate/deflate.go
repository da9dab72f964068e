package pmdeflate

import (
	"compress/flate"
	"errors"
	"io"
	"sync"
)

// tail is what a sync flush ends with, and what RFC 7692 section 7.2.1
// has the sender strip from a compressed message.
var tail = [4]byte{0x00, 0x00, 0xff, 0xff}

// writerPools holds idle compressors by level (flate.HuffmanOnly is -2).
var writerPools [flate.BestCompression + 3]sync.Pool

func getWriter(level int, w io.Writer) *flate.Writer {
	if fw, ok := writerPools[level+2].Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	fw, err := flate.NewWriter(w, level)
	if err != nil {
		panic(err) // the level was checked by Options.Check or set here
	}
	return fw
}

// putWriter pools fw as it is: getWriter resets it, and a reset costs a
// clear of its tables at levels above 1.
func putWriter(level int, fw *flate.Writer) {
	writerPools[level+2].Put(fw)
}

// writerSize is what a flate.Writer holds, as measured on Go 1.26 (level 1
// has a table of its own); IdleBytes reports it.
func writerSize(level int) int {
	if level == flate.BestSpeed {
		return 1200 << 10
	}
	return 800 << 10
}

// Deflater compresses the messages one connection sends, one at a time,
// as RFC 7692 section 7.2.1 describes: each ends with a sync flush whose
// last four bytes (0x00 0x00 0xff 0xff) are left out. Its compressor comes
// from a pool at the start of a message and goes back at its end, unless
// p.ServerNoContextTakeover is false: then the connection keeps it, with
// what it has seen. A Deflater is used by one goroutine at a time.
type Deflater struct {
	level    int
	takeover bool
	fw       *flate.Writer // while a message is in progress, or kept
	out      trimWriter
	inMsg    bool
	app      appender // Append's output
}

// NewDeflater returns the compressor of a connection that negotiated p.
func NewDeflater(p Params) *Deflater {
	return &Deflater{level: p.level, takeover: !p.ServerNoContextTakeover}
}

// errInMessage is a misuse of a Deflater.
var errInMessage = errors.New("pmdeflate: message already in progress")

// Begin starts a message whose compressed bytes go to w as they come
// (not all at once: a long message reaches w in blocks as it is written).
func (d *Deflater) Begin(w io.Writer) error {
	if d.inMsg {
		return errInMessage
	}
	d.inMsg = true
	d.out = trimWriter{w: w}
	if d.fw == nil {
		d.fw = getWriter(d.level, &d.out)
	}
	return nil
}

// Write compresses p, part of the message in progress.
func (d *Deflater) Write(p []byte) (int, error) {
	if !d.inMsg {
		return 0, errors.New("pmdeflate: Write outside a message")
	}
	return d.fw.Write(p)
}

// End ends the message in progress: it writes what the compressor holds,
// without the four bytes RFC 7692 leaves out, and returns the compressor
// to its pool unless the connection keeps it.
func (d *Deflater) End() error {
	if !d.inMsg {
		return errors.New("pmdeflate: End outside a message")
	}
	d.inMsg = false
	err := d.fw.Flush()
	if err == nil && (d.out.n != 4 || d.out.held != tail) {
		err = errors.New("pmdeflate: flush did not end with a sync marker")
	}
	d.out = trimWriter{}
	if !d.takeover || err != nil {
		putWriter(d.level, d.fw)
		d.fw = nil
	}
	return err
}

// Append appends the compressed form of the whole message msg to dst.
func (d *Deflater) Append(dst, msg []byte) ([]byte, error) {
	d.app.b = dst
	defer func() { d.app.b = nil }()
	if err := d.Begin(&d.app); err != nil {
		return dst, err
	}
	if _, err := d.Write(msg); err != nil {
		d.End()
		return dst, err
	}
	if err := d.End(); err != nil {
		return dst, err
	}
	return d.app.b, nil
}

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// IdleBytes is about what the Deflater holds between messages: its
// compressor with context takeover, else nothing.
func (d *Deflater) IdleBytes() int {
	if d.takeover && d.fw != nil {
		return writerSize(d.level)
	}
	return 0
}

// Close releases a kept compressor at the connection's end. A message in
// progress is abandoned.
func (d *Deflater) Close() {
	if d.fw != nil {
		putWriter(d.level, d.fw)
		d.fw = nil
	}
	d.inMsg = false
	d.out = trimWriter{}
}

// trimWriter passes on all but the last four bytes written to it.
type trimWriter struct {
	w    io.Writer
	held [4]byte
	n    int // bytes in held
}

func (t *trimWriter) Write(p []byte) (int, error) {
	total := len(p)
	if t.n+len(p) <= 4 {
		t.n += copy(t.held[t.n:], p)
		return total, nil
	}
	// Pass on what will not be among the last four: first of the held
	// bytes, then of p.
	out := t.n + len(p) - 4
	if k := min(out, t.n); k > 0 {
		if _, err := t.w.Write(t.held[:k]); err != nil {
			return 0, err
		}
		t.n = copy(t.held[:], t.held[k:t.n])
		out -= k
	}
	if out > 0 {
		if _, err := t.w.Write(p[:out]); err != nil {
			return 0, err
		}
		p = p[out:]
	}
	t.n += copy(t.held[t.n:], p)
	return total, nil
}
