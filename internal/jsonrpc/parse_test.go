package jsonrpc

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// view is the comparable summary of a Call the tests check.
type view struct {
	Method     string
	HasMethod  bool
	ID         string
	HasID      bool
	HasParams  bool
	IsResponse bool
	Result     string
	HasError   bool
	Elem       string // msg[Start:End]
	Err        string // Err.Reason
}

func viewOf(msg []byte, c Call) view {
	v := view{
		Method: c.Method, HasMethod: c.HasMethod, ID: string(c.ID), HasID: c.HasID,
		HasParams: c.HasParams, IsResponse: c.IsResponse, Result: string(c.Result),
		HasError: c.HasError, Elem: string(msg[c.Start:c.End]),
	}
	if c.Err != nil {
		v.Err = c.Err.Reason
	}
	return v
}

func viewsOf(msg []byte, calls []Call) []view {
	var vs []view
	for _, c := range calls {
		vs = append(vs, viewOf(msg, c))
	}
	return vs
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		msg   string
		batch bool
		want  []view
	}{
		{
			name: "call",
			msg:  ` {"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":[]} `,
			want: []view{{Method: "chain_getBlock", HasMethod: true, ID: "1", HasID: true, HasParams: true,
				Elem: `{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":[]}`}},
		},
		{
			name: "notification",
			msg:  `{"jsonrpc":"2.0","method":"x"}`,
			want: []view{{Method: "x", HasMethod: true, Elem: `{"jsonrpc":"2.0","method":"x"}`}},
		},
		{
			name: "escaped method",
			msg:  `{"jsonrpc":"2.0","method":"author\u005finsertKey","id":"a"}`,
			want: []view{{Method: "author_insertKey", HasMethod: true, ID: `"a"`, HasID: true,
				Elem: `{"jsonrpc":"2.0","method":"author\u005finsertKey","id":"a"}`}},
		},
		{
			name: "escaped key",
			msg:  `{"jsonrpc":"2.0","\u006dethod":"author_rotateKeys","id":null}`,
			want: []view{{Method: "author_rotateKeys", HasMethod: true, ID: "null", HasID: true,
				Elem: `{"jsonrpc":"2.0","\u006dethod":"author_rotateKeys","id":null}`}},
		},
		{
			name: "surrogate pair in method",
			msg:  `{"jsonrpc":"2.0","method":"a\ud83d\ude00"}`,
			want: []view{{Method: "a😀", HasMethod: true, Elem: `{"jsonrpc":"2.0","method":"a\ud83d\ude00"}`}},
		},
		{
			name: "method last after huge params",
			msg:  `{"jsonrpc":"2.0","params":["` + strings.Repeat("ab", 100) + `"],"method":"x","id":7}`,
			want: []view{{Method: "x", HasMethod: true, ID: "7", HasID: true, HasParams: true,
				Elem: `{"jsonrpc":"2.0","params":["` + strings.Repeat("ab", 100) + `"],"method":"x","id":7}`}},
		},
		{
			name: "key differs only in case",
			msg:  `{"jsonrpc":"2.0","Method":"author_insertKey","method":"system_health"}`,
			want: []view{{Method: "system_health", HasMethod: true, Elem: `{"jsonrpc":"2.0","Method":"author_insertKey","method":"system_health"}`}},
		},
		{
			name: "duplicate method",
			msg:  `{"jsonrpc":"2.0","method":"system_health","method":"author_insertKey","id":1}`,
			want: []view{{Method: "system_health", HasMethod: true, ID: "1", HasID: true, Err: `duplicate member "method"`,
				Elem: `{"jsonrpc":"2.0","method":"system_health","method":"author_insertKey","id":1}`}},
		},
		{
			name: "duplicate method via escape",
			msg:  `{"jsonrpc":"2.0","method":"system_health","\u006d\u0065thod":"author_insertKey","id":1}`,
			want: []view{{Method: "system_health", HasMethod: true, ID: "1", HasID: true, Err: `duplicate member "\u006d\u0065thod"`,
				Elem: `{"jsonrpc":"2.0","method":"system_health","\u006d\u0065thod":"author_insertKey","id":1}`}},
		},
		{
			// serde refuses the Request (id twice) but not the Notification,
			// which has no id field: the node runs it and never answers.
			name: "duplicate id is a notification",
			msg:  `{"jsonrpc":"2.0","id":1,"method":"a","id":2}`,
			want: []view{{Method: "a", HasMethod: true, HasID: true, Elem: `{"jsonrpc":"2.0","id":1,"method":"a","id":2}`}},
		},
		{
			name: "non-string method",
			msg:  `{"jsonrpc":"2.0","method":["author_insertKey"],"id":3}`,
			want: []view{{HasMethod: true, ID: "3", HasID: true, Err: "method is not a string",
				Elem: `{"jsonrpc":"2.0","method":["author_insertKey"],"id":3}`}},
		},
		{
			name: "lone surrogate in method",
			msg:  `{"jsonrpc":"2.0","method":"a\ud800","id":3}`,
			want: []view{{Method: "a", HasMethod: true, ID: "3", HasID: true, Err: "lone surrogate in method",
				Elem: `{"jsonrpc":"2.0","method":"a\ud800","id":3}`}},
		},
		{
			name: "object id is a notification",
			msg:  `{"jsonrpc":"2.0","method":"a","id":{}}`,
			want: []view{{Method: "a", HasMethod: true, HasID: true, Elem: `{"jsonrpc":"2.0","method":"a","id":{}}`}},
		},
		{
			name: "negative id is a notification", // IDKind tells; Err stays nil
			msg:  `{"jsonrpc":"2.0","method":"a","id":-1}`,
			want: []view{{Method: "a", HasMethod: true, ID: "-1", HasID: true, Elem: `{"jsonrpc":"2.0","method":"a","id":-1}`}},
		},
		{
			name: "missing jsonrpc",
			msg:  `{"id":1,"method":"a"}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, Err: `missing jsonrpc "2.0"`,
				Elem: `{"id":1,"method":"a"}`}},
		},
		{
			name: "jsonrpc 2.1",
			msg:  `{"jsonrpc":"2.1","id":"x","method":"a"}`,
			want: []view{{Method: "a", HasMethod: true, ID: `"x"`, HasID: true, Err: `jsonrpc is not "2.0"`,
				Elem: `{"jsonrpc":"2.1","id":"x","method":"a"}`}},
		},
		{
			name: "jsonrpc a number",
			msg:  `{"jsonrpc":2.0,"id":null,"method":"a"}`,
			want: []view{{Method: "a", HasMethod: true, ID: "null", HasID: true, Err: `jsonrpc is not "2.0"`,
				Elem: `{"jsonrpc":2.0,"id":null,"method":"a"}`}},
		},
		{
			name: "jsonrpc escaped",
			msg:  `{"jsonrpc":"2\u002e0","id":1,"method":"a"}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, Elem: `{"jsonrpc":"2\u002e0","id":1,"method":"a"}`}},
		},
		{
			name: "duplicate jsonrpc",
			msg:  `{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"a"}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, Err: `duplicate member "jsonrpc"`,
				Elem: `{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"a"}`}},
		},
		{
			name: "duplicate params",
			msg:  `{"jsonrpc":"2.0","params":[],"id":1,"method":"a","params":{}}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, HasParams: true, Err: `duplicate member "params"`,
				Elem: `{"jsonrpc":"2.0","params":[],"id":1,"method":"a","params":{}}`}},
		},
		{
			name: "result twice beside a method", // unknown to the node's Request: ignored
			msg:  `{"jsonrpc":"2.0","result":1,"id":1,"method":"a","result":2}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, IsResponse: true, Result: "1",
				Elem: `{"jsonrpc":"2.0","result":1,"id":1,"method":"a","result":2}`}},
		},
		{
			name: "response with two results",
			msg:  `{"jsonrpc":"2.0","result":1,"id":1,"result":2}`,
			want: []view{{ID: "1", HasID: true, IsResponse: true, Result: "1", Err: "duplicate member result or error",
				Elem: `{"jsonrpc":"2.0","result":1,"id":1,"result":2}`}},
		},
		{
			name:  "unreadable id of an invalid call", // answered with id null, as the node does
			msg:   `[{"jsonrpc":"2.0","method":7,"id":-1}]`,
			batch: true,
			want: []view{{HasMethod: true, HasID: true, Err: "method is not a string",
				Elem: `{"jsonrpc":"2.0","method":7,"id":-1}`}},
		},
		{
			name:  "lone surrogate in a member name",
			msg:   `[{"jsonrpc":"2.0","method":"a","id":1,"\ud800":0}]`,
			batch: true,
			want: []view{{Method: "a", HasMethod: true, HasID: true, Err: "lone surrogate in member name",
				Elem: `{"jsonrpc":"2.0","method":"a","id":1,"\ud800":0}`}},
		},
		{
			name: "lone surrogate in a nested name or value", // the node ignores them
			msg:  `{"jsonrpc":"2.0","method":"a","id":1,"params":{"\ud800":"\udc00"},"x":"\ud800"}`,
			want: []view{{Method: "a", HasMethod: true, ID: "1", HasID: true, HasParams: true,
				Elem: `{"jsonrpc":"2.0","method":"a","id":1,"params":{"\ud800":"\udc00"},"x":"\ud800"}`}},
		},
		{
			name: "leading form feed", // jsonrpsee skips Rust's ASCII whitespace first
			msg:  "\f\t {\"jsonrpc\":\"2.0\",\"method\":\"a\"}",
			want: []view{{Method: "a", HasMethod: true, Elem: `{"jsonrpc":"2.0","method":"a"}`}},
		},
		{
			name: "missing method",
			msg:  `{"jsonrpc":"2.0","id":5}`,
			want: []view{{ID: "5", HasID: true, Err: "missing method", Elem: `{"jsonrpc":"2.0","id":5}`}},
		},
		{
			name: "response",
			msg:  `{"jsonrpc":"2.0","result":{"a":[1,2]},"id":"x"}`,
			want: []view{{IsResponse: true, Result: `{"a":[1,2]}`, ID: `"x"`, HasID: true,
				Elem: `{"jsonrpc":"2.0","result":{"a":[1,2]},"id":"x"}`}},
		},
		{
			name: "error response",
			msg:  `{"jsonrpc":"2.0","error":{"code":-1,"message":"m"},"id":2}`,
			want: []view{{IsResponse: true, HasError: true, ID: "2", HasID: true,
				Elem: `{"jsonrpc":"2.0","error":{"code":-1,"message":"m"},"id":2}`}},
		},
		{
			name:  "batch",
			msg:   "[ {\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1} ,\n1, {\"jsonrpc\":\"2.0\",\"method\":\"b\"},[] ]",
			batch: true,
			want: []view{
				{Method: "a", HasMethod: true, ID: "1", HasID: true, Elem: `{"jsonrpc":"2.0","method":"a","id":1}`},
				{Err: "request is not an object", Elem: `1`},
				{Method: "b", HasMethod: true, Elem: `{"jsonrpc":"2.0","method":"b"}`},
				{Err: "request is not an object", Elem: `[]`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msg := []byte(tt.msg)
			calls, batch, err := Parse(msg, 10, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if batch != tt.batch {
				t.Errorf("batch = %v, want %v", batch, tt.batch)
			}
			if diff := cmp.Diff(tt.want, viewsOf(msg, calls)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  string
		max  int
		want Error
	}{
		{"empty", "  ", 10, Error{CodeParseError, 2, "empty message"}},
		{"scalar", " 42", 10, Error{CodeParseError, 1, "message is not an object or array"}},
		{"string", `"a"`, 10, Error{CodeParseError, 0, "message is not an object or array"}},
		{"128 spaces first", strings.Repeat(" ", 128) + `{"jsonrpc":"2.0","method":"a"}`, 10,
			Error{CodeParseError, 128, "no '{' or '[' in the first 128 bytes"}},
		{"invalid without an id", `{"jsonrpc":"2.0","method":1}`, 10,
			Error{CodeParseError, 26, "method is not a string, and no id"}},
		{"invalid with an unreadable id", `{"jsonrpc":"2.0","method":1,"id":-1}`, 10,
			Error{CodeParseError, 26, "method is not a string, and no id"}},
		{"missing method, no id", `{}`, 10, Error{CodeParseError, 0, "missing method, and no id"}},
		{"form feed after", `{"jsonrpc":"2.0","method":"a"}` + "\f", 10, Error{CodeParseError, 30, "data after the JSON value"}},
		{"trailing garbage", `{"method":"a"} x`, 10, Error{CodeParseError, 15, "data after the JSON value"}},
		{"two values", `{"method":"a"}{}`, 10, Error{CodeParseError, 14, "data after the JSON value"}},
		{"invalid escape", `{"method":"a\x"}`, 10, Error{CodeParseError, 12, "invalid escape"}},
		{"short unicode escape", `{"method":"\u00"}`, 10, Error{CodeParseError, 11, "invalid escape"}},
		{"control char", "{\"method\":\"a\tb\"}", 10, Error{CodeParseError, 12, "control character in string"}},
		{"invalid UTF-8", "{\"method\":\"a\xffb\"}", 10, Error{CodeParseError, 12, "invalid UTF-8"}},
		{"UTF-8 surrogate", "[\"\xed\xa0\x80\"]", 10, Error{CodeParseError, 2, "invalid UTF-8"}},
		{"unterminated string", `{"method":"abc`, 10, Error{CodeParseError, 10, "unterminated string"}},
		{"unterminated object", `{"method":"abc"`, 10, Error{CodeParseError, 15, "unexpected end of input"}},
		{"trailing comma", `{"method":"a",}`, 10, Error{CodeParseError, 14, "expected object key"}},
		{"trailing comma in array", `[1,]`, 10, Error{CodeParseError, 3, "invalid character"}},
		{"leading zero", `{"id":01}`, 10, Error{CodeParseError, 7, "expected ',' or '}'"}},
		{"bare minus", `[-]`, 10, Error{CodeParseError, 2, "invalid number"}},
		{"bad fraction", `[1.]`, 10, Error{CodeParseError, 3, "invalid number"}},
		{"bad exponent", `[1e+]`, 10, Error{CodeParseError, 4, "invalid number"}},
		{"bad literal", `[nul]`, 10, Error{CodeParseError, 1, "invalid literal"}},
		{"single quotes", `{'method':'a'}`, 10, Error{CodeParseError, 1, "expected object key"}},
		{"missing colon", `{"method" "a"}`, 10, Error{CodeParseError, 10, "expected ':'"}},
		{"BOM", "\xef\xbb\xbf{}", 10, Error{CodeParseError, 0, "message is not an object or array"}},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), 10,
			Error{CodeParseError, MaxDepth, reasonTooDeep}},
		{"empty batch", ` [ ] `, 10, Error{CodeInvalidRequest, 1, "empty batch"}},
		{"batch too long", `[{"method":"a"},{"method":"b"},{"method":"c"}]`, 2,
			Error{CodeLimitExceeded, 31, "batch too long"}},
		{"batches disabled", `[{"method":"a"}]`, 0, Error{CodeLimitExceeded, 1, "batch too long"}},
		{"broken batch", `[{"method":"a"},`, 10, Error{CodeParseError, 16, "unexpected end of input"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := make([]Call, 1, 4)
			calls, _, err := Parse([]byte(tt.msg), tt.max, dst)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Parse error = %v (%T), want *Error", err, err)
			}
			if diff := cmp.Diff(tt.want, *e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if len(calls) != 1 {
				t.Errorf("len(calls) = %d, want dst unchanged (1)", len(calls))
			}
		})
	}
}

func TestParseDepth(t *testing.T) {
	t.Parallel()
	ok := `{"jsonrpc":"2.0","params":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `,"method":"a"}`
	if _, _, err := Parse([]byte(ok), 1, nil); err != nil {
		t.Errorf("Parse at MaxDepth: %v", err)
	}
	deep := `[{"jsonrpc":"2.0","params":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `,"method":"a"}]`
	if _, _, err := Parse([]byte(deep), 1, nil); err == nil || err.(*Error).Reason != reasonTooDeep {
		t.Errorf("Parse past MaxDepth inside a batch: err = %v, want %q", err, reasonTooDeep)
	}
}

func TestParseReusesDst(t *testing.T) {
	t.Parallel()
	msg := []byte(`[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b","id":2}]`)
	dst := make([]Call, 0, 2)
	calls, _, err := Parse(msg, 10, dst)
	if err != nil {
		t.Fatal(err)
	}
	if &calls[0] != &dst[:1][0] {
		t.Error("Parse did not append into dst")
	}
	calls, _, err = Parse([]byte(`{"jsonrpc":"2.0","method":"c"}`), 10, calls[:0])
	if err != nil || len(calls) != 1 || calls[0].Method != "c" || calls[0].ID != nil {
		t.Errorf("second Parse = %+v, %v; want one fresh call c", calls, err)
	}
}

func TestTrimSpace(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                 "",
		" \t\r\n":          "",
		"\n {\"a\":1} \t ": `{"a":1}`,
		"\v{}\f":           "\v{}\f", // not JSON whitespace
	} {
		if got := string(TrimSpace([]byte(in))); got != want {
			t.Errorf("TrimSpace(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	msgs := map[string][]byte{
		"call":    []byte(`{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":["0x01"]}`),
		"escaped": []byte(`{"jsonrpc":"2.0","\u0069d":1,"\u006dethod":"chain_getBlock"}`),
		"batch":   []byte(`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]`),
	}
	dst := make([]Call, 0, 4)
	for name, msg := range msgs {
		if n := testing.AllocsPerRun(100, func() {
			if _, _, err := Parse(msg, 10, dst[:0]); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocs per Parse, want 0", name, n)
		}
	}
}
