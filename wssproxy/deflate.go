package wssproxy

import (
	"compress/flate"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/pmdeflate"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// Defaults of [DeflateOptions].
const (
	// DefaultDeflateLevel is the compress/flate level of messages to
	// clients: the fastest, as nginx's gzip_comp_level defaults to. On a
	// 1.37 MB metadata reply it sends 347 KB for 18 ms of CPU; level 4
	// sends 253 KB for 40 ms, level 6 230 KB for 100 ms.
	DefaultDeflateLevel = pmdeflate.DefaultLevel
	// DefaultDeflateThreshold is the size under which a message goes
	// plain: small replies and new heads gain a few bytes from deflate
	// and would pay its CPU and latency.
	DefaultDeflateThreshold = pmdeflate.DefaultThreshold
)

// DeflateOptions configures permessage-deflate (RFC 7692) between the
// gateway and its clients. Browsers and Node's ws (which @polkadot/api
// uses) offer it on every connection; the node's server does not, so the
// gateway compresses what it sends a client and inflates what a client
// sends compressed, and the node sees plain messages. The zero value
// compresses text messages of DefaultDeflateThreshold bytes or more at
// DefaultDeflateLevel, with no context takeover: a connection holds a
// compressor (about 1 MB) or decompressor (40 KB) only while a message is
// compressed or inflated.
//
// In shared mode ([Options.Share]) clients are served by the websocket
// package, whose own permessage-deflate is used with the same Disabled,
// Threshold and ContextTakeover; it compresses at level 1 whatever Level
// says, and ClientMaxWindowBits does not apply.
type DeflateOptions struct {
	// Disabled declines every offer: all messages go plain, as before.
	Disabled bool

	// Level is the compress/flate level: 1 (fastest) to 9 (smallest), or
	// flate.HuffmanOnly (-2). If zero, DefaultDeflateLevel.
	Level int

	// Threshold is the size in bytes under which a message to a client
	// goes uncompressed. If zero, DefaultDeflateThreshold; if negative,
	// every text message is compressed.
	Threshold int

	// ContextTakeover lets each side of a connection refer back to the
	// messages it sent before, which shrinks small similar messages (new
	// heads, storage changes) much further, for memory held by every idle
	// connection: the gateway's compressor (about 1.2 MB at level 1, 0.8
	// MB at other levels) and the last 2^ClientMaxWindowBits bytes the
	// client sent. If false, the gateway answers server_no_context_takeover
	// and client_no_context_takeover, and an idle connection holds nothing.
	ContextTakeover bool

	// ClientMaxWindowBits (8 to 15) is the window asked of a client with
	// ContextTakeover, which bounds what the gateway keeps of what it
	// sent. If zero, 15 (32 KiB), as clients use anyway.
	ClientMaxWindowBits int
}

func (d *DeflateOptions) check() error {
	if d == nil {
		return nil
	}
	if l := d.Level; l != 0 && l != flate.HuffmanOnly && (l < flate.BestSpeed || l > flate.BestCompression) {
		return fmt.Errorf("wssproxy: Options.Deflate.Level is %d; it must be 1 to 9 or -2 (Huffman only)", l)
	}
	if b := d.ClientMaxWindowBits; b != 0 && (b < 8 || b > 15) {
		return fmt.Errorf("wssproxy: Options.Deflate.ClientMaxWindowBits is %d; it must be 8 to 15", b)
	}
	return nil
}

// deflateConn is one connection's negotiated permessage-deflate.
type deflateConn struct {
	params pmdeflate.Params
	out    *pmdeflate.Deflater // node to client: the toClient copier's alone
	in     *pmdeflate.Inflater // client to node: the toNode copier's alone
}

// negotiateDeflate answers a client's permessage-deflate offer, if it made
// one the gateway accepts: it returns the connection's state and the
// response's Sec-WebSocket-Extensions value, or nil.
func (p *Proxy) negotiateDeflate(r *http.Request) (*deflateConn, string) {
	return p.negotiateDeflateValues(r.Header["Sec-Websocket-Extensions"])
}

// negotiateDeflateValues is negotiateDeflate on the values of the
// request's Sec-WebSocket-Extensions fields.
func (p *Proxy) negotiateDeflateValues(offers []string) (*deflateConn, string) {
	d := p.opts.Deflate
	if len(offers) == 0 || d != nil && d.Disabled {
		return nil, ""
	}
	var o pmdeflate.Options
	if d != nil {
		o = pmdeflate.Options{
			Level:                 d.Level,
			Threshold:             d.Threshold,
			ServerContextTakeover: d.ContextTakeover,
			ClientContextTakeover: d.ContextTakeover,
			ClientMaxWindowBits:   d.ClientMaxWindowBits,
		}
	}
	params, ok := pmdeflate.Negotiate(offers, &o)
	if !ok {
		return nil, ""
	}
	in := pmdeflate.NewInflater(params)
	in.Alloc = getBig
	return &deflateConn{params: params, out: pmdeflate.NewDeflater(params), in: in}, params.Header()
}

// sharedDeflate maps Options.Deflate to the websocket package's
// compression, which shared mode's clients are served with: the same
// negotiation and threshold, at the package's own level (1), with the
// read limit on inflated bytes as in the relay.
func (p *Proxy) sharedDeflate() (websocket.CompressionMode, int) {
	d := p.opts.Deflate
	switch {
	case d == nil:
		return websocket.CompressionNoContextTakeover, DefaultDeflateThreshold
	case d.Disabled:
		return websocket.CompressionDisabled, 0
	}
	mode := websocket.CompressionNoContextTakeover
	if d.ContextTakeover {
		mode = websocket.CompressionContextTakeover
	}
	threshold := d.Threshold
	switch {
	case threshold == 0:
		threshold = DefaultDeflateThreshold
	case threshold < 0:
		threshold = 1 // the package's 0 means its own default
	}
	return mode, threshold
}

// rsv1 marks the first frame of a compressed message (RFC 7692 section 6).
const rsv1 = 0x40

// inflateBound is the largest compressed message accepted for a read
// limit: deflate's stored blocks add a few bytes per 16 KiB to data that
// does not compress, so a message within the limit may come a little over
// it compressed.
func inflateBound(limit int64) int64 {
	if limit < 0 {
		return limit
	}
	return limit + limit>>11 + 64
}

// deflateFrames writes the compressed bytes of a message passed through
// to the client as they come, in frames of up to readBufSize bytes: the
// first with the message's opcode and RSV1, the others continuations,
// and the last (written by finish) with FIN.
type deflateFrames struct {
	c       *copier
	op      wsframe.Opcode
	buf     *[]byte // from readPool while the message is in flight
	n       int
	started bool
}

func (z *deflateFrames) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if z.buf == nil {
			z.buf = readPool.Get().(*[]byte)
		}
		k := copy((*z.buf)[z.n:], p)
		z.n += k
		p = p[k:]
		if z.n == len(*z.buf) {
			if err := z.frame(false); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// frame sends what is held as one frame.
func (z *deflateFrames) frame(fin bool) error {
	h := wsframe.Header{Fin: fin, Opcode: wsframe.OpContinuation, Length: int64(z.n)}
	if !z.started {
		h.Opcode, h.RSV, z.started = z.op, rsv1, true
	}
	var p []byte
	if z.buf != nil {
		p = (*z.buf)[:z.n]
	}
	z.n = 0
	if err := z.c.dst.out.putFrame(h, p, false, fin); err != nil {
		return &sideError{z.c.dst.side, err}
	}
	z.c.pc.stats[z.c.dir].bytes.Add(h.Length)
	return nil
}

// finish sends the message's last frame and frees the buffer.
func (z *deflateFrames) finish() error {
	err := z.frame(true)
	z.release()
	return err
}

func (z *deflateFrames) release() {
	if z.buf != nil {
		readPool.Put(z.buf)
		z.buf = nil
	}
	z.n, z.started = 0, false
}
