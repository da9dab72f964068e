package jsonrpc

import (
	"strings"
	"testing"
)

// hexParam returns a JSON string of about n bytes of hex, like an encoded
// extrinsic.
func hexParam(n int) string {
	return `"0x` + strings.Repeat("0123456789abcdef", n/16) + `"`
}

func BenchmarkParse(b *testing.B) {
	batch := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"state_getStorage","params":["0x26aa394eea5630e07c48ae0c9558cef7"]},`, 9) +
		`{"jsonrpc":"2.0","id":10,"method":"state_getStorage","params":["0x26aa394eea5630e07c48ae0c9558cef7"]}]`
	for _, bm := range []struct {
		name string
		msg  string
	}{
		{"call-100B", `{"jsonrpc":"2.0","id":42,"method":"chain_getBlock","params":["0x` + strings.Repeat("ab", 24) + `"]}`},
		{"call-64KiB-method-first", `{"jsonrpc":"2.0","id":1,"method":"author_submitExtrinsic","params":[` + hexParam(64<<10) + `]}`},
		{"call-1.4MiB-method-last", `{"params":[` + hexParam(1400<<10) + `],"id":1,"jsonrpc":"2.0","method":"author_submitExtrinsic"}`},
		{"batch-10", batch},
	} {
		b.Run(bm.name, func(b *testing.B) {
			msg := []byte(bm.msg)
			dst := make([]Call, 0, 16)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				calls, _, err := Parse(msg, 16, dst[:0])
				if err != nil || calls[len(calls)-1].Method == "" {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendError(b *testing.B) {
	buf := make([]byte, 0, 256)
	id := []byte("12345")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendError(buf[:0], id, CodeMethodNotFound,
			"method author_insertKey is not allowed: unsafe node method", "")
	}
}
