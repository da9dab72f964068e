package pmdeflate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The examples of RFC 7692 section 7.2.3: "Hello" compressed in the ways
// a sender may.
var rfcHello = map[string][]byte{
	"7.2.3.1 one block":        {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
	"7.2.3.3 stored block":     {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00},
	"7.2.3.4 BFINAL set":       {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00},
	"7.2.3.5 two blocks":       {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00},
	"7.2.3.1 on a long buffer": append(make([]byte, 0, 64), 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00),
}

func negotiated(t testing.TB, values string, o *Options) Params {
	t.Helper()
	p, ok := Negotiate([]string{values}, o)
	if !ok {
		t.Fatalf("Negotiate(%q) declined", values)
	}
	return p
}

func TestInflateRFCExamples(t *testing.T) {
	t.Parallel()
	f := NewInflater(negotiated(t, ExtensionName, nil))
	for name, msg := range rfcHello {
		got, err := f.Inflate(nil, msg, 5)
		if err != nil || string(got) != "Hello" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if got, err := f.Inflate([]byte("x"), []byte{0x00}, 0); err != nil || string(got) != "x" {
		t.Errorf("7.2.3.6 empty message: %q, %v", got, err)
	}
	// 7.2.3.2: the second "Hello" refers to the first, which only an
	// Inflater that keeps its window can follow.
	second := []byte{0xf2, 0x00, 0x11, 0x00, 0x00}
	keep := NewInflater(negotiated(t, ExtensionName, &Options{ClientContextTakeover: true}))
	for i, msg := range [][]byte{rfcHello["7.2.3.1 one block"], second} {
		if got, err := keep.Inflate(nil, msg, -1); err != nil || string(got) != "Hello" {
			t.Fatalf("message %d with context takeover: %q, %v", i, got, err)
		}
	}
	if _, err := NewInflater(negotiated(t, ExtensionName, nil)).Inflate(nil, second, -1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a reference to a previous message without takeover: %v, want ErrCorrupt", err)
	}
}

// metadataReply is a state_getMetadata reply as a node sends it: the
// real metadata of internal/rpctest, hex inside JSON (about 1.2 MB).
func metadataReply(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open("../rpctest/testdata/metadata-v15-substrate.scale.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{"jsonrpc":"2.0","id":7,"result":"0x` + hex.EncodeToString(raw) + `"}`)
}

// reference inflates a message as RFC 7692 section 7.2.2 says, with
// nothing of this package.
func reference(t testing.TB, msg []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(msg), bytes.NewReader(tail[:]))))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reference inflate: %v", err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	meta := metadataReply(t)
	msgs := map[string][]byte{
		"empty":    {},
		"call":     []byte(`{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[]}`),
		"metadata": meta,
		"random":   bytes.Repeat([]byte{0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15}, 5000),
	}
	configs := map[string]*Options{
		"defaults":         nil,
		"level 6":          {Level: 6},
		"huffman":          {Level: flate.HuffmanOnly},
		"context takeover": {ServerContextTakeover: true, ClientContextTakeover: true},
	}
	for cname, o := range configs {
		t.Run(cname, func(t *testing.T) {
			t.Parallel()
			p := negotiated(t, ExtensionName, o)
			d, f := NewDeflater(p), NewInflater(p)
			defer d.Close()
			for round := range 2 {
				for name, msg := range msgs {
					if name == "metadata" && (round > 0 || o != nil && o.Level != 0) {
						msg = msg[:128<<10] // the whole of it once is enough under -race
					}
					z, err := d.Append(nil, msg)
					if err != nil {
						t.Fatal(err)
					}
					if bytes.HasSuffix(z, tail[:]) {
						t.Errorf("%s: the sync marker was not stripped", name)
					}
					if !d.takeover {
						if got := reference(t, z); !bytes.Equal(got, msg) {
							t.Errorf("%s: reference inflates %d bytes, want %d", name, len(got), len(msg))
						}
					}
					got, err := f.Inflate(nil, z, int64(len(msg)))
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("round %d %s: %d bytes, %v", round, name, len(got), err)
					}
				}
			}
		})
	}
	if z, _ := NewDeflater(negotiated(t, ExtensionName, nil)).Append(nil, meta); len(z) > len(meta)*3/10 {
		t.Errorf("metadata compressed to %d of %d bytes", len(z), len(meta))
	}
}

// TestContextTakeover checks that a kept compressor refers back: the
// second of two equal messages costs a few bytes.
func TestContextTakeover(t *testing.T) {
	t.Parallel()
	msg := []byte(strings.Repeat(`{"jsonrpc":"2.0","method":"chain_newHead","params":{"result":{"number":"0x1234"}}}`, 20))
	for _, takeover := range []bool{false, true} {
		p := negotiated(t, ExtensionName, &Options{ServerContextTakeover: takeover, ClientContextTakeover: takeover})
		d, f := NewDeflater(p), NewInflater(p)
		first, _ := d.Append(nil, msg)
		second, _ := d.Append(nil, msg)
		if got, err := f.Inflate(nil, first, -1); err != nil || !bytes.Equal(got, msg) {
			t.Fatal(err)
		}
		if got, err := f.Inflate(nil, second, -1); err != nil || !bytes.Equal(got, msg) {
			t.Fatal(err)
		}
		if small := len(second) < len(first)/2; small != takeover {
			t.Errorf("takeover %v: messages of %d then %d bytes", takeover, len(first), len(second))
		}
		idleD, idleF := d.IdleBytes(), f.IdleBytes()
		if takeover != (idleD > 0) || takeover != (idleF == 1<<15) {
			t.Errorf("takeover %v: idle bytes %d (compressor), %d (window)", takeover, idleD, idleF)
		}
		d.Close()
		if d.IdleBytes() != 0 {
			t.Errorf("a closed Deflater holds %d bytes", d.IdleBytes())
		}
	}
}

// TestInflateWindow checks that a window of 2^9 bytes is enough for a
// client that compresses with it, and that the window slides.
func TestInflateWindow(t *testing.T) {
	t.Parallel()
	p := negotiated(t, "permessage-deflate; client_max_window_bits", &Options{ClientContextTakeover: true, ClientMaxWindowBits: 9})
	f := NewInflater(p)
	var all []byte
	for i := range 50 {
		msg := []byte(strings.Repeat(string(rune('a'+i%26)), 100+i*7))
		all = append(all, msg...)
		var buf bytes.Buffer
		// A client compressing with the whole history and a 512-byte window
		// is modelled by a dictionary of the last 512 bytes before msg.
		dict := all[max(0, len(all)-len(msg)-512) : len(all)-len(msg)]
		fw, _ := flate.NewWriterDict(&buf, 9, dict)
		fw.Write(msg)
		fw.Flush()
		z := bytes.TrimSuffix(buf.Bytes(), tail[:])
		got, err := f.Inflate(nil, z, -1)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if f.IdleBytes() != 512 {
		t.Errorf("window of %d bytes, want 512", f.IdleBytes())
	}
}

// TestStreaming checks that Begin/Write/End passes compressed bytes on as
// they come, not at the end, and that they are the message.
func TestStreaming(t *testing.T) {
	t.Parallel()
	meta := metadataReply(t)
	d := NewDeflater(negotiated(t, ExtensionName, nil))
	var out bytes.Buffer
	if err := d.Begin(&out); err != nil {
		t.Fatal(err)
	}
	if err := d.Begin(&out); err == nil {
		t.Error("a second Begin inside a message succeeded")
	}
	early := 0
	for chunk := range slicesChunk(meta, 4096) {
		if _, err := d.Write(chunk); err != nil {
			t.Fatal(err)
		}
		early = out.Len()
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	if early == 0 || early == out.Len() {
		t.Errorf("%d of %d compressed bytes came before End", early, out.Len())
	}
	if got := reference(t, out.Bytes()); !bytes.Equal(got, meta) {
		t.Error("streamed message does not inflate to the input")
	}
	if err := d.End(); err == nil {
		t.Error("End outside a message succeeded")
	}
}

func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

// TestTrimWriter writes a message in every split of its bytes.
func TestTrimWriter(t *testing.T) {
	t.Parallel()
	in := []byte("abcdefgh\x00\x00\xff\xff")
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			var out bytes.Buffer
			tw := trimWriter{w: &out}
			for _, p := range [][]byte{in[:i], in[i:j], in[j:]} {
				if n, err := tw.Write(p); n != len(p) || err != nil {
					t.Fatal(n, err)
				}
			}
			if out.String() != "abcdefgh" || tw.n != 4 || tw.held != tail {
				t.Fatalf("split %d,%d: passed %q, held %q", i, j, out.String(), tw.held[:tw.n])
			}
		}
	}
}

func TestInflateErrors(t *testing.T) {
	t.Parallel()
	z, _ := NewDeflater(negotiated(t, ExtensionName, nil)).Append(nil, []byte(strings.Repeat("hello world ", 100)))
	f := NewInflater(negotiated(t, ExtensionName, nil))
	for name, msg := range map[string][]byte{
		"reserved block type": {0x07, 0x00},
		"truncated":           z[:len(z)/2],
		"bad stored length":   {0x00, 0x05, 0x00, 0x00, 0x00, 'H'},
		"distance too far":    {0xf2, 0x00, 0x11, 0x00, 0x00},
	} {
		if _, err := f.Inflate(nil, msg, -1); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// After an error the pooled decompressor still works.
	if got, err := f.Inflate(nil, z, -1); err != nil || len(got) != 1200 {
		t.Errorf("after errors: %d bytes, %v", len(got), err)
	}
}

// TestInflateLimit checks the limit at its edges.
func TestInflateLimit(t *testing.T) {
	t.Parallel()
	msg := []byte(strings.Repeat("0123456789", 100))
	z, _ := NewDeflater(negotiated(t, ExtensionName, nil)).Append(nil, msg)
	f := NewInflater(negotiated(t, ExtensionName, nil))
	for _, tt := range []struct {
		limit int64
		err   error
	}{{-1, nil}, {1000, nil}, {999, ErrTooBig}, {0, ErrTooBig}, {1 << 20, nil}} {
		dst := append(make([]byte, 0, 6), "prefix"...)
		got, err := f.Inflate(dst, z, tt.limit)
		if !errors.Is(err, tt.err) {
			t.Errorf("limit %d: %v, want %v", tt.limit, err, tt.err)
		}
		if err != nil && (len(got) != 6 || &got[0] != &dst[0]) {
			t.Errorf("limit %d: dst changed on error", tt.limit)
		}
		if err == nil && string(got) != "prefix"+string(msg) {
			t.Errorf("limit %d: wrong message", tt.limit)
		}
	}
}

// bomb returns a message that inflates to about n zero bytes, 158 times
// its size: a block of fixed Huffman codes, a literal zero then copies of
// 258 bytes at distance 1 (13 bits each). It is crafted because
// compressing a gigabyte takes minutes under -race; a compressor's
// dynamic codes reach 1,000 times.
func bomb(n int) []byte {
	var w bitWriter
	w.bits(0, 1)    // BFINAL: the message ends with the stripped sync marker
	w.bits(1, 2)    // BTYPE 01: fixed Huffman codes
	w.code(0x30, 8) // literal 0
	for left := n - 1; left >= 258; left -= 258 {
		w.code(0xc5, 8) // length code 285: 258 bytes
		w.code(0, 5)    // distance code 0: distance 1
	}
	w.code(0, 7) // end of block
	// The sync flush the sender ends a message with, stripped but for its
	// first byte (an empty stored block's header, aligned).
	w.bits(0, 3)
	w.flush()
	return w.b
}

type bitWriter struct {
	b     []byte
	acc   uint64
	nbits uint
}

// bits writes the n low bits of v, least significant first.
func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

// code writes an n-bit Huffman code, most significant bit first.
func (w *bitWriter) code(c uint64, n uint) {
	var r uint64
	for i := range n {
		r |= (c >> i & 1) << (n - 1 - i)
	}
	w.bits(r, n)
}

func (w *bitWriter) flush() {
	if w.nbits > 0 {
		w.b = append(w.b, byte(w.acc))
		w.acc, w.nbits = 0, 0
	}
}

// TestInflateBomb inflates a message that would be 1 GiB with a 1 MiB
// limit: it stops with ErrTooBig having allocated about the limit. It is
// not parallel, so that the allocation count is its own.
func TestInflateBomb(t *testing.T) {
	z := bomb(1 << 30)
	const limit = 1 << 20
	f := NewInflater(negotiated(t, ExtensionName, nil))
	f.Inflate(nil, []byte{0x00}, 0) // a pooled decompressor, warm
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := f.Inflate(nil, z, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("%d compressed bytes: %v, want ErrTooBig", len(z), err)
	}
	if got != nil {
		t.Errorf("dst grew to %d bytes", len(got))
	}
	// The chunks hold limit+1 bytes: 33 of 32 KiB, allocated unless the
	// pool had them, plus the decompressor if the pool (which drops items
	// under -race) had none.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit+chunkSize+64<<10 {
		t.Errorf("allocated %d bytes for a limit of %d", alloc, limit)
	}
	t.Logf("%d compressed bytes (1 GiB inflated) stopped at the limit of %d having allocated %d bytes",
		len(z), limit, after.TotalAlloc-before.TotalAlloc)

	// The same bomb inflates whole without the limit: it is what it says.
	small := bomb(10 << 20)
	all, err := f.Inflate(nil, small, -1)
	if err != nil || len(all) != 10<<20-(10<<20-1)%258 || bytes.IndexFunc(all, func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("bomb of 10 MiB inflates to %d bytes, %v", len(all), err)
	}
}

// TestConcurrent runs connections in parallel on the shared pools.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			p := negotiated(t, ExtensionName, &Options{Level: 1 + g%9, Threshold: -1})
			d, f := NewDeflater(p), NewInflater(p)
			for i := range 50 {
				msg := []byte(strings.Repeat(`{"id":`+string(rune('0'+i%10))+`}`, 10+i*g))
				z, err := d.Append(nil, msg)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := f.Inflate(nil, z, -1); err != nil || !bytes.Equal(got, msg) {
					t.Errorf("goroutine %d message %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestInflateAlloc: a message that does not fit dst goes into one buffer
// from Alloc, asked for its exact size; one that fits stays in dst.
func TestInflateAlloc(t *testing.T) {
	t.Parallel()
	msg := []byte(strings.Repeat("abc", 1000))
	z, _ := NewDeflater(negotiated(t, ExtensionName, nil)).Append(nil, msg)
	f := NewInflater(negotiated(t, ExtensionName, nil))
	var asked []int
	f.Alloc = func(n int) []byte {
		asked = append(asked, n)
		return make([]byte, 0, 4096)
	}
	got, err := f.Inflate([]byte("x"), z, -1)
	if err != nil || string(got) != "x"+string(msg) || cap(got) != 4096 || len(asked) != 1 || asked[0] != 3001 {
		t.Errorf("Inflate = %d bytes (cap %d), %v; Alloc asked %v", len(got), cap(got), err, asked)
	}
	room := make([]byte, 0, 5000)
	if got, _ := f.Inflate(room, z, -1); &got[0] != &room[:1][0] || len(asked) != 1 {
		t.Error("a message that fits dst did not stay in it")
	}
}
