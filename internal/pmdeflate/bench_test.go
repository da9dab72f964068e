package pmdeflate

import (
	"compress/flate"
	"fmt"
	"testing"
)

// A call as a wallet sends one (100 bytes) and a reply of its size.
const (
	call100  = `{"jsonrpc":"2.0","id":4242,"method":"state_getStorage","params":["0x26aa394eea5630e07c48ae0c9558cef7"]}`
	reply100 = `{"jsonrpc":"2.0","id":4242,"result":"0x0000000000000000010000000000000000ca9a3b0000000000000000000000"}`
)

// frameLen is what a message of n bytes costs on a client's wire in a
// server frame (header and payload; TLS adds the same to either).
func frameLen(n int) int {
	switch {
	case n > 0xffff:
		return 10 + n
	case n > 125:
		return 4 + n
	}
	return 2 + n
}

// BenchmarkCompress compares, in one run, a message sent plain and
// compressed at several levels: the bytes on the client's wire per
// message (wire-B/msg) and the CPU the gateway spends per message (ns/op,
// one goroutine; plain is the copy into a frame).
//
//	go test -run '^$' -bench Compress -benchmem ./internal/pmdeflate
func BenchmarkCompress(b *testing.B) {
	msgs := []struct {
		name string
		msg  []byte
	}{{"metadata-1.2MB", metadataReply(b)}, {"reply-100B", []byte(reply100)}, {"call-100B", []byte(call100)}}
	for _, m := range msgs {
		b.Run(m.name+"/plain", func(b *testing.B) {
			b.SetBytes(int64(len(m.msg)))
			b.ReportAllocs()
			out := make([]byte, 0, frameLen(len(m.msg)))
			for b.Loop() {
				out = append(append(out[:0], 0x81, 127, 0, 0, 0, 0, 0, 0, 0, 0)[:frameLen(len(m.msg))-len(m.msg)], m.msg...)
			}
			b.ReportMetric(float64(len(out)), "wire-B/msg")
		})
		for _, level := range []int{flate.HuffmanOnly, 1, 4, 6} {
			name := fmt.Sprintf("%s/level%d", m.name, level)
			if level == flate.HuffmanOnly {
				name = m.name + "/huffman"
			}
			b.Run(name, func(b *testing.B) {
				d := NewDeflater(Params{level: level, ServerNoContextTakeover: true})
				b.SetBytes(int64(len(m.msg)))
				b.ReportAllocs()
				out := make([]byte, 0, len(m.msg)+64)
				var err error
				for b.Loop() {
					if out, err = d.Append(out[:0], m.msg); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(frameLen(len(out))), "wire-B/msg")
			})
		}
	}
}

// BenchmarkInflate is the cost of a client's compressed message: the
// gateway inflates it before the session reads it.
func BenchmarkInflate(b *testing.B) {
	for _, m := range []struct {
		name string
		msg  []byte
	}{{"metadata-1.2MB", metadataReply(b)}, {"call-100B", []byte(call100)}} {
		p := Params{level: 6, ServerNoContextTakeover: true, ClientNoContextTakeover: true}
		z, _ := NewDeflater(p).Append(nil, m.msg)
		b.Run(m.name, func(b *testing.B) {
			f := NewInflater(p)
			b.SetBytes(int64(len(m.msg)))
			b.ReportAllocs()
			out := make([]byte, 0, len(m.msg))
			var err error
			for b.Loop() {
				if out, err = f.Inflate(out[:0], z, 4<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
