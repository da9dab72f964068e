package jsonrpc

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      []byte
		code    int
		message string
		data    string
		want    string
	}{
		{"null id", nil, CodeParseError, "Parse error", "",
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
		{"number id and data", []byte("7"), CodeMethodNotFound, "method author_insertKey is not allowed", "unsafe",
			`{"jsonrpc":"2.0","error":{"code":-32601,"message":"method author_insertKey is not allowed","data":"unsafe"},"id":7}`},
		{"string id", []byte(`"a\"b"`), CodeInvalidRequest, "x", "",
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"x"},"id":"a\"b"}`},
		{"escaping", []byte("1"), CodeLimitExceeded, "q\"b\\n\n\t\r\x00\x1f\u2028é\xff", "",
			`{"jsonrpc":"2.0","error":{"code":-32005,"message":"q\"b\\n\n\t\r\u0000\u001f` + "\u2028é" + `\ufffd"},"id":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendError([]byte("prefix:"), tt.id, tt.code, tt.message, tt.data)
			if diff := cmp.Diff("prefix:"+tt.want, string(got)); diff != "" {
				t.Errorf("AppendError (-want +got):\n%s", diff)
			}
			if !json.Valid(got[len("prefix:"):]) {
				t.Errorf("AppendError output is not valid JSON: %s", got)
			}
		})
	}
}

func TestAppendBatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		elems []string
		want  string
	}{
		{nil, `[]`},
		{[]string{`{"a":1}`}, `[{"a":1}]`},
		{[]string{`1`, `{"method":"x"}`, `"s"`}, `[1,{"method":"x"},"s"]`},
	} {
		var elems [][]byte
		for _, e := range tt.elems {
			elems = append(elems, []byte(e))
		}
		if got := string(AppendBatch(nil, elems...)); got != tt.want {
			t.Errorf("AppendBatch(%q) = %s, want %s", tt.elems, got, tt.want)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	e1, e2 := []byte(`{"method":"a"}`), []byte(`{"method":"b"}`)
	if n := testing.AllocsPerRun(100, func() {
		b := AppendError(buf[:0], []byte("12"), CodeMethodNotFound, "method x is not allowed", "")
		_ = AppendBatch(b[:0], e1, e2)
	}); n != 0 {
		t.Errorf("%v allocs per AppendError+AppendBatch into a large enough buffer, want 0", n)
	}
}
