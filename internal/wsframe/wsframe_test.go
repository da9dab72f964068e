package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseHeader(t *testing.T) {
	t.Parallel()
	key := [4]byte{1, 2, 3, 4}
	tests := []struct {
		name string
		b    []byte
		want Header
		n    int
		err  error
	}{
		{"empty", nil, Header{}, 0, ErrShort},
		{"one byte", []byte{0x81}, Header{}, 0, ErrShort},
		{"text 5", []byte{0x81, 0x05}, Header{Fin: true, Opcode: OpText, Length: 5}, 2, nil},
		{"masked", []byte{0x82, 0x85, 1, 2, 3, 4}, Header{Fin: true, Opcode: OpBinary, Masked: true, Key: key, Length: 5}, 6, nil},
		{"masked, key cut", []byte{0x82, 0x85, 1, 2, 3}, Header{}, 0, ErrShort},
		{"16-bit", []byte{0x02, 126, 0x01, 0x00}, Header{Opcode: OpBinary, Length: 256}, 4, nil},
		{"16-bit cut", []byte{0x02, 126, 0x01}, Header{}, 0, ErrShort},
		{"64-bit", []byte{0x00, 127, 0, 0, 0, 1, 0, 0, 0, 0}, Header{Opcode: OpContinuation, Length: 1 << 32}, 10, nil},
		{"64-bit cut", []byte{0x00, 127, 0, 0, 0, 1, 0, 0, 0}, Header{}, 0, ErrShort},
		{"64-bit top bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, Header{}, 0, ErrLength},
		{"rsv bits", []byte{0xf9, 0x00}, Header{Fin: true, RSV: 0x70, Opcode: OpPing}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, n, err := ParseHeader(tt.b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, h); diff != "" || n != tt.n {
				t.Errorf("n = %d, want %d; header (-want +got):\n%s", n, tt.n, diff)
			}
		})
	}
}

func TestAppendHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, l := range []int64{0, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 40} {
		for _, masked := range []bool{false, true} {
			h := Header{Fin: l%2 == 0, Opcode: OpBinary, Masked: masked, Length: l}
			if masked {
				h.Key = [4]byte{9, 8, 7, 6}
			}
			b := AppendHeader([]byte("x"), h)[1:]
			if len(b) != HeaderLen(h) {
				t.Errorf("len %d: header is %d bytes, HeaderLen says %d", l, len(b), HeaderLen(h))
			}
			got, n, err := ParseHeader(b)
			if err != nil || n != len(b) {
				t.Fatalf("len %d: ParseHeader = %d, %v", l, n, err)
			}
			if diff := cmp.Diff(h, got); diff != "" {
				t.Errorf("len %d masked %v (-want +got):\n%s", l, masked, diff)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		h      Header
		masked bool
		ok     bool
	}{
		{"client text", Header{Fin: true, Opcode: OpText, Masked: true}, true, true},
		{"client unmasked", Header{Fin: true, Opcode: OpText}, true, false},
		{"server masked", Header{Fin: true, Opcode: OpText, Masked: true}, false, false},
		{"server text", Header{Fin: true, Opcode: OpText}, false, true},
		{"rsv1", Header{Fin: true, RSV: 0x40, Opcode: OpText, Masked: true}, true, false},
		{"opcode 3", Header{Fin: true, Opcode: 3, Masked: true}, true, false},
		{"opcode 0xB", Header{Fin: true, Opcode: 0xB, Masked: true}, true, false},
		{"fragmented ping", Header{Opcode: OpPing, Masked: true}, true, false},
		{"ping 125", Header{Fin: true, Opcode: OpPing, Masked: true, Length: 125}, true, true},
		{"ping 126", Header{Fin: true, Opcode: OpPing, Masked: true, Length: 126}, true, false},
		{"big binary fragment", Header{Opcode: OpBinary, Masked: true, Length: 1 << 30}, true, true},
	}
	for _, tt := range tests {
		err := tt.h.Check(tt.masked)
		var pe ProtocolError
		if ok := err == nil; ok != tt.ok || (err != nil && !errors.As(err, &pe)) {
			t.Errorf("%s: Check = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestFragments(t *testing.T) {
	t.Parallel()
	type step struct {
		op    Opcode
		fin   bool
		start bool
		ok    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"whole messages", []step{{OpText, true, true, true}, {OpBinary, true, true, true}}},
		{"fragmented", []step{{OpText, false, true, true}, {OpContinuation, false, false, true}, {OpContinuation, true, false, true}, {OpBinary, true, true, true}}},
		{"continuation first", []step{{OpContinuation, true, false, false}}},
		{"new inside", []step{{OpBinary, false, true, true}, {OpText, true, false, false}}},
		{"continuation after end", []step{{OpText, true, true, true}, {OpContinuation, true, false, false}}},
	}
	for _, tt := range tests {
		var f Fragments
		for i, s := range tt.steps {
			start, err := f.Next(&Header{Opcode: s.op, Fin: s.fin})
			if (err == nil) != s.ok || (err == nil && start != s.start) {
				t.Errorf("%s step %d: Next = %v, %v; want start %v ok %v", tt.name, i, start, err, s.start, s.ok)
			}
		}
	}
}

func naiveMask(key [4]byte, pos int, b []byte) {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := r.IntN(300)
		pos := r.IntN(9)
		var key [4]byte
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want := bytes.Clone(b)
		naiveMask(key, pos, want)
		// In two pieces, to check the returned offset.
		cut := 0
		if n > 0 {
			cut = r.IntN(n)
		}
		next := Mask(key, pos, b[:cut])
		if next != pos+cut {
			t.Fatalf("Mask returned %d, want %d", next, pos+cut)
		}
		Mask(key, next, b[cut:])
		if !bytes.Equal(b, want) {
			t.Fatalf("n=%d pos=%d cut=%d: Mask differs from the byte-wise mask", n, pos, cut)
		}
	}
}

func TestParseClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    []byte
		want CloseError
		err  bool
		utf8 bool
	}{
		{"empty", nil, CloseError{Code: StatusNoStatusRcvd}, false, false},
		{"one byte", []byte{3}, CloseError{}, true, false},
		{"1000", []byte{0x03, 0xe8}, CloseError{Code: 1000}, false, false},
		{"1001 with reason", append([]byte{0x03, 0xe9}, "bye"...), CloseError{Code: 1001, Reason: "bye"}, false, false},
		{"1005 reserved", []byte{0x03, 0xed}, CloseError{}, true, false},
		{"1006 reserved", []byte{0x03, 0xee}, CloseError{}, true, false},
		{"1015 reserved", []byte{0x03, 0xf7}, CloseError{}, true, false},
		{"999", []byte{0x03, 0xe7}, CloseError{}, true, false},
		{"2999", []byte{0x0b, 0xb7}, CloseError{}, true, false},
		{"3000", []byte{0x0b, 0xb8}, CloseError{Code: 3000}, false, false},
		{"4999", []byte{0x13, 0x87}, CloseError{Code: 4999}, false, false},
		{"5000", []byte{0x13, 0x88}, CloseError{}, true, false},
		{"bad utf8", []byte{0x03, 0xe8, 0xff}, CloseError{}, true, true},
	}
	for _, tt := range tests {
		got, err := ParseClose(tt.p)
		if (err != nil) != tt.err || errors.Is(err, ErrCloseReasonUTF8) != tt.utf8 {
			t.Errorf("%s: err = %v, want error %v (utf8 %v)", tt.name, err, tt.err, tt.utf8)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestAppendClose(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100) // 200 bytes
	for _, masked := range []bool{false, true} {
		key := [4]byte{0xa, 0xb, 0xc, 0xd}
		b := AppendClose(nil, StatusGoingAway, long, masked, key)
		h, n, err := ParseHeader(b)
		if err != nil || h.Opcode != OpClose || !h.Fin || h.Masked != masked || int(h.Length) != len(b)-n {
			t.Fatalf("masked %v: header %+v, %v", masked, h, err)
		}
		p := bytes.Clone(b[n:])
		if masked {
			Mask(h.Key, 0, p)
		}
		ce, err := ParseClose(p)
		if err != nil || ce.Code != StatusGoingAway || !strings.HasPrefix(long, ce.Reason) || len(ce.Reason) != 122 {
			t.Errorf("masked %v: ParseClose = %+v (%d bytes), %v", masked, ce, len(ce.Reason), err)
		}
	}
	if b := AppendClose(nil, StatusNoStatusRcvd, "ignored", false, [4]byte{}); !bytes.Equal(b, []byte{0x88, 0}) {
		t.Errorf("empty close frame = %x", b)
	}
}

func TestTruncateReason(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "short", strings.Repeat("a", 123), strings.Repeat("a", 200),
		strings.Repeat("a", 122) + "é", strings.Repeat("a", 121) + "€x", strings.Repeat("😀", 40)} {
		got := TruncateReason(s)
		if len(got) > MaxReason || !utf8.ValidString(got) || !strings.HasPrefix(s, got) {
			t.Errorf("TruncateReason(%q) = %q", s, got)
		}
		if len(s) <= MaxReason && got != s {
			t.Errorf("TruncateReason(%q) = %q, want it unchanged", s, got)
		}
		if len(s) > MaxReason && len(got) < MaxReason-3 {
			t.Errorf("TruncateReason(%q) cut to %d bytes, more than a rune short", s, len(got))
		}
	}
}

func BenchmarkMask(b *testing.B) {
	for _, n := range []int{100, 32 << 10} {
		buf := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Mask([4]byte{1, 2, 3, 4}, 1, buf)
			}
		})
	}
}
