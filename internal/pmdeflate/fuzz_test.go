package pmdeflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
)

// FuzzNegotiate checks that any Sec-WebSocket-Extensions value either
// negotiates nothing or gets a response that is itself a valid offer list
// stating what was negotiated.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		`permessage-deflate; server_max_window_bits="10"; client_no_context_takeover, permessage-deflate`,
		"x-foo; a=\"b\\\"c\", permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
		"permessage-deflate; server_max_window_bits=08",
		",,;=",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, value string, takeover bool) {
		o := &Options{ServerContextTakeover: takeover, ClientContextTakeover: takeover}
		offers, err := ParseOffers([]string{value})
		p, ok := Negotiate([]string{value}, o)
		if err != nil {
			if ok || offers != nil {
				t.Fatalf("malformed header %q negotiated %v, %d offers", value, ok, len(offers))
			}
			return
		}
		var first *Offer
		for i := range offers {
			if offers[i].Err == nil {
				first = &offers[i]
				break
			}
		}
		if ok != (first != nil) {
			t.Fatalf("%q: negotiated %v with offers %+v", value, ok, offers)
		}
		if !ok {
			return
		}
		back, err := ParseOffers([]string{p.Header()})
		if err != nil || len(back) != 1 || back[0].Err != nil {
			t.Fatalf("response %q to %q reads back as %+v, %v", p.Header(), value, back, err)
		}
		r := back[0]
		switch {
		case (first.ServerNoContextTakeover || !takeover) && !r.ServerNoContextTakeover,
			!takeover && !r.ClientNoContextTakeover,
			first.ClientNoContextTakeover && takeover && !r.ClientNoContextTakeover,
			first.ServerMaxWindowBits != r.ServerMaxWindowBits,
			first.ClientMaxWindowBits == 0 && r.ClientMaxWindowBits != 0,
			first.ClientMaxWindowBits > 0 && r.ClientMaxWindowBits > first.ClientMaxWindowBits,
			r.ServerMaxWindowBits > 0 && r.ServerMaxWindowBits < 15 && p.Level() != flate.HuffmanOnly:
			t.Fatalf("offer %+v answered %q", *first, p.Header())
		}
	})
}

// FuzzInflate checks Inflate against compress/flate on its own, with a
// limit: the same bytes when the message fits, ErrTooBig when it does not,
// and never more than limit+1 bytes inflated. The input is also compressed
// and inflated back whole.
func FuzzInflate(f *testing.F) {
	for _, msg := range rfcHello {
		f.Add(msg, uint16(5))
	}
	f.Add([]byte{0x00}, uint16(0))
	f.Add(bomb(1<<20), uint16(1000))
	z, _ := NewDeflater(Params{level: 1}).Append(nil, []byte(`{"jsonrpc":"2.0","id":1,"result":"0x00"}`))
	f.Add(z, uint16(100))
	f.Add(z, uint16(10))
	f.Fuzz(func(t *testing.T, msg []byte, lim uint16) {
		limit := int64(lim)
		in := NewInflater(Params{ClientNoContextTakeover: true})
		got, err := in.Inflate(nil, msg, limit)
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(io.MultiReader(bytes.NewReader(msg), bytes.NewReader(end))), limit+1))
		switch {
		case int64(len(want)) > limit:
			if !errors.Is(err, ErrTooBig) || got != nil {
				t.Fatalf("%d bytes over a limit of %d: %d bytes, %v", len(want), limit, len(got), err)
			}
		case werr != nil:
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flate fails with %v, Inflate with %v", werr, err)
			}
		case err != nil || !bytes.Equal(got, want):
			t.Fatalf("Inflate = %d bytes, %v; flate %d bytes", len(got), err, len(want))
		}

		p := Params{level: 1 + int(lim%9), ServerNoContextTakeover: true, ClientNoContextTakeover: true}
		z, err := NewDeflater(p).Append(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := NewInflater(p).Inflate(nil, z, int64(len(msg)))
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(msg), len(back), err)
		}
	})
}
