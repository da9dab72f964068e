package wsframe

import (
	"bytes"
	"testing"
)

// FuzzParseHeader: ParseHeader never panics, never reads past what it
// reports, and what it parses appends back to the same bytes whenever the
// input used the shortest length form.
func FuzzParseHeader(f *testing.F) {
	for _, s := range [][]byte{
		{0x81, 0x05}, {0x82, 0x85, 1, 2, 3, 4}, {0x02, 126, 1, 0}, {0x00, 127, 0, 0, 0, 1, 0, 0, 0, 0},
		{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, {0x88, 0x82, 0, 0, 0, 0, 3, 0xe8}, {0xff, 0xff},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n = %d", err, n)
			}
			return
		}
		if n < 2 || n > MaxHeaderLen || n > len(b) || h.Length < 0 {
			t.Fatalf("n = %d, length %d for %x", n, h.Length, b)
		}
		// A strict prefix must be short.
		if _, _, err := ParseHeader(b[:n-1]); err != ErrShort {
			t.Fatalf("prefix of %d bytes: %v, want ErrShort", n-1, err)
		}
		out := AppendHeader(nil, h)
		if n == HeaderLen(h) && !bytes.Equal(out, b[:n]) {
			t.Fatalf("AppendHeader(%+v) = %x, want %x", h, out, b[:n])
		}
		h2, n2, err := ParseHeader(out)
		if err != nil || n2 != len(out) || h2 != h {
			t.Fatalf("round trip: %+v %d %v, want %+v", h2, n2, err, h)
		}
		_ = h.Check(true)
		if h.Opcode == OpClose && h.Fin && h.Length <= int64(len(b)-n) {
			p := bytes.Clone(b[n : n+int(h.Length)])
			Mask(h.Key, 0, p)
			if ce, err := ParseClose(p); err == nil && len(p) >= 2 {
				again := AppendClose(nil, ce.Code, ce.Reason, false, [4]byte{})
				if !bytes.Equal(again[2:], p) {
					t.Fatalf("close payload %x re-encoded as %x", p, again[2:])
				}
			}
		}
	})
}
