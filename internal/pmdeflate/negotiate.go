package pmdeflate

import (
	"compress/flate"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ExtensionName is the extension token of RFC 7692.
const ExtensionName = "permessage-deflate"

// Defaults of [Options].
const (
	// DefaultLevel is the compression level, the fastest, as nginx's
	// gzip_comp_level defaults to: on a 1.37 MB metadata reply level 1
	// sends 347 KB for 18 ms of CPU, level 4 253 KB for 40 ms and level 6
	// 230 KB for 100 ms (BenchmarkCompress).
	DefaultLevel = flate.BestSpeed
	// DefaultThreshold is the size under which a message is sent plain:
	// small replies and notifications gain a few bytes from deflate but
	// pay its CPU and latency.
	DefaultThreshold = 1024
	// DefaultClientMaxWindowBits is the window asked of a client that may
	// keep its context: the largest, as the client would use anyway.
	DefaultClientMaxWindowBits = 15
)

// Options are the server's choices. The zero value compresses messages of
// DefaultThreshold bytes or more at DefaultLevel with no context takeover
// either way, so an idle connection holds no compression state.
type Options struct {
	// Level is the compress/flate level for messages sent: 1 (fastest) to
	// 9 (smallest), or flate.HuffmanOnly. If zero, DefaultLevel.
	Level int

	// Threshold is the size in bytes under which a message is sent
	// uncompressed. If zero, DefaultThreshold; if negative, every message
	// is compressed.
	Threshold int

	// ServerContextTakeover lets the server keep its compressor between
	// messages, so a message may refer to the ones before it: smaller
	// small messages, for a compressor of about 0.8 MB held by every
	// connection. If false, the response carries server_no_context_takeover.
	// A client that offers server_no_context_takeover gets it either way.
	ServerContextTakeover bool

	// ClientContextTakeover lets a client compress a message with
	// references to the ones before it; the server then keeps the last
	// 2^ClientMaxWindowBits bytes a client sent. If false, the response
	// carries client_no_context_takeover and the server keeps nothing.
	ClientContextTakeover bool

	// ClientMaxWindowBits (8 to 15) is the window asked of a client that
	// may keep its context and supports client_max_window_bits, which
	// bounds what the server keeps for it. If zero, DefaultClientMaxWindowBits.
	ClientMaxWindowBits int
}

// Check reports an invalid option, naming the field.
func (o *Options) Check() error {
	if o == nil {
		return nil
	}
	if l := o.Level; l != 0 && l != flate.HuffmanOnly && (l < flate.BestSpeed || l > flate.BestCompression) {
		return fmt.Errorf("pmdeflate: Level %d is not 1 to 9 or flate.HuffmanOnly (-2)", l)
	}
	if b := o.ClientMaxWindowBits; b != 0 && (b < 8 || b > 15) {
		return fmt.Errorf("pmdeflate: ClientMaxWindowBits %d is not 8 to 15", b)
	}
	return nil
}

// Offer is one permessage-deflate offer of a client (RFC 7692 section 7.1).
type Offer struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	// ServerMaxWindowBits is the largest window the client accepts for
	// the server's messages, 8 to 15; 0 if the offer has no limit.
	ServerMaxWindowBits int
	// ClientMaxWindowBits says the client supports the parameter: 0 if
	// absent, -1 if given with no value, else the value (8 to 15), a hint
	// of the window it will use.
	ClientMaxWindowBits int
	// Err says why the offer breaks RFC 7692 section 7.1: an unknown or
	// repeated parameter, or an invalid value. Such an offer is declined.
	Err error
}

// ParseOffers returns the permessage-deflate offers in the values of a
// request's Sec-WebSocket-Extensions fields, in the client's order of
// preference, skipping other extensions. A value that is not an
// extension list fails the whole header (no offers and an error).
func ParseOffers(values []string) ([]Offer, error) {
	exts, err := parseExtensions(values)
	if err != nil {
		return nil, err
	}
	var offers []Offer
	for _, e := range exts {
		if strings.EqualFold(e.name, ExtensionName) {
			offers = append(offers, parseOffer(e.params))
		}
	}
	return offers, nil
}

func parseOffer(params []param) Offer {
	var o Offer
	seen := map[string]bool{}
	for _, p := range params {
		name := strings.ToLower(p.name)
		if seen[name] {
			o.Err = fmt.Errorf("pmdeflate: %s repeated", name)
			return o
		}
		seen[name] = true
		var err error
		switch name {
		case "server_no_context_takeover":
			o.ServerNoContextTakeover, err = true, noValue(p)
		case "client_no_context_takeover":
			o.ClientNoContextTakeover, err = true, noValue(p)
		case "server_max_window_bits":
			if !p.hasValue {
				err = errors.New("pmdeflate: server_max_window_bits without a value")
			} else {
				o.ServerMaxWindowBits, err = windowBits(p)
			}
		case "client_max_window_bits":
			o.ClientMaxWindowBits = -1
			if p.hasValue {
				o.ClientMaxWindowBits, err = windowBits(p)
			}
		default:
			err = fmt.Errorf("pmdeflate: unknown parameter %q", p.name)
		}
		if err != nil {
			o.Err = err
			return o
		}
	}
	return o
}

func noValue(p param) error {
	if p.hasValue {
		return fmt.Errorf("pmdeflate: %s with a value", strings.ToLower(p.name))
	}
	return nil
}

// windowBits reads a window size: a decimal from 8 to 15 with no leading
// zero (RFC 7692 sections 7.1.2.1 and 7.1.2.2).
func windowBits(p param) (int, error) {
	n := 0
	for i, c := range []byte(p.value) {
		if c < '0' || c > '9' || (i == 0 && c == '0') || i > 1 {
			n = 0
			break
		}
		n = n*10 + int(c-'0')
	}
	if n < 8 || n > 15 {
		return 0, fmt.Errorf("pmdeflate: %s=%q is not 8 to 15", strings.ToLower(p.name), p.value)
	}
	return n, nil
}

// Params is a negotiated configuration: what the server's response says,
// which binds both sides.
type Params struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	// ServerMaxWindowBits is the server's window as the response states
	// it; 0 if the response does not (the server uses 15 bits).
	ServerMaxWindowBits int
	// ClientMaxWindowBits is the window the response asks of the client;
	// 0 if it does not (the client may use 15 bits).
	ClientMaxWindowBits int

	level     int // the level the server compresses at
	threshold int
}

// Negotiate accepts the first offer in the request's
// Sec-WebSocket-Extensions values that the server can honour under o (nil
// for the defaults), and reports false if there is none (the connection
// then goes uncompressed). Offers that break RFC 7692 are declined; every
// valid one is acceptable. Header gives the response's value.
func Negotiate(values []string, o *Options) (Params, bool) {
	offers, err := ParseOffers(values)
	if err != nil {
		return Params{}, false
	}
	for _, off := range offers {
		if off.Err == nil {
			return accept(off, o), true
		}
	}
	return Params{}, false
}

// accept answers a valid offer.
func accept(off Offer, o *Options) Params {
	if o == nil {
		o = &Options{}
	}
	p := Params{level: o.Level, threshold: o.Threshold}
	if p.level == 0 {
		p.level = DefaultLevel
	}
	if p.threshold == 0 {
		p.threshold = DefaultThreshold
	}
	p.ServerNoContextTakeover = off.ServerNoContextTakeover || !o.ServerContextTakeover
	if b := off.ServerMaxWindowBits; b != 0 {
		// The response must state a window no larger than the offer's.
		// flate compresses with 15 bits; below that only Huffman coding,
		// which refers to nothing before, honours it.
		p.ServerMaxWindowBits = b
		if b < 15 {
			p.level = flate.HuffmanOnly
		}
	}
	p.ClientNoContextTakeover = off.ClientNoContextTakeover || !o.ClientContextTakeover
	if !p.ClientNoContextTakeover && off.ClientMaxWindowBits != 0 {
		want := o.ClientMaxWindowBits
		if want == 0 {
			want = DefaultClientMaxWindowBits
		}
		if off.ClientMaxWindowBits > 0 {
			want = min(want, off.ClientMaxWindowBits)
		}
		p.ClientMaxWindowBits = want
	}
	return p
}

// Header returns the value of the response's Sec-WebSocket-Extensions
// field that accepts p.
func (p Params) Header() string {
	b := []byte(ExtensionName)
	if p.ServerNoContextTakeover {
		b = append(b, "; server_no_context_takeover"...)
	}
	if p.ClientNoContextTakeover {
		b = append(b, "; client_no_context_takeover"...)
	}
	if p.ServerMaxWindowBits != 0 {
		b = strconv.AppendInt(append(b, "; server_max_window_bits="...), int64(p.ServerMaxWindowBits), 10)
	}
	if p.ClientMaxWindowBits != 0 {
		b = strconv.AppendInt(append(b, "; client_max_window_bits="...), int64(p.ClientMaxWindowBits), 10)
	}
	return string(b)
}

// Level is the compress/flate level the server compresses at.
func (p Params) Level() int { return p.level }

// Compress reports whether a message of n bytes is to be sent compressed.
func (p Params) Compress(n int) bool { return n >= p.threshold }
