package jsonrpc

import (
	"fmt"
	"strings"
	"testing"
)

func TestClassifyID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want IDKind
	}{
		{"", IDAbsent},
		{"null", IDNull},
		{"0", IDNumber},
		{"1", IDNumber},
		{"18446744073709551615", IDNumber},  // u64::MAX
		{"18446744073709551616", IDInvalid}, // u64::MAX+1: serde_json makes it an f64
		{"99999999999999999999", IDInvalid},
		{"100000000000000000000", IDInvalid},
		{"-0", IDInvalid}, // serde_json: f64 -0.0
		{"-1", IDInvalid}, // i64
		{"1.0", IDInvalid},
		{"1e2", IDInvalid},
		{"1E2", IDInvalid},
		{"0.5", IDInvalid},
		{"1e400", IDInvalid},
		{"01", IDInvalid}, // not JSON
		{`""`, IDString},
		{`"a"`, IDString},
		{`"\u0061"`, IDString},
		{`"\ud83d\ude00"`, IDString},
		{`"\ud800"`, IDInvalid},       // lone high surrogate
		{`"\udc00"`, IDInvalid},       // lone low surrogate
		{`"\ud800\u0041"`, IDInvalid}, // high surrogate followed by a non-surrogate
		{`"x\ud83d"`, IDInvalid},
		{`"` + strings.Repeat("x", 1<<16) + `"`, IDString},
		{`"unterminated`, IDInvalid},
		{"true", IDInvalid},
		{"false", IDInvalid},
		{"{}", IDInvalid},
		{"[]", IDInvalid},
		{`[1]`, IDInvalid},
		{" 7 ", IDNumber},
	}
	for _, tt := range tests {
		name := tt.raw
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			if got := ClassifyID([]byte(tt.raw)); got != tt.want {
				t.Errorf("ClassifyID(%q) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestCallIDKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg  string
		want IDKind
	}{
		{`{"jsonrpc":"2.0","method":"a"}`, IDAbsent},
		{`{"jsonrpc":"2.0","method":"a","id":null}`, IDNull},
		{`{"jsonrpc":"2.0","method":"a","id":18446744073709551615}`, IDNumber},
		{`{"jsonrpc":"2.0","method":"a","id":"\u0061"}`, IDString},
		{`{"jsonrpc":"2.0","method":"a","id":-1}`, IDInvalid},
		{`{"jsonrpc":"2.0","method":"a","id":1.5}`, IDInvalid},
		{`{"jsonrpc":"2.0","method":"a","id":"\udfff"}`, IDInvalid},
		{`{"jsonrpc":"2.0","method":"a","id":true}`, IDInvalid},
		{`{"jsonrpc":"2.0","method":"a","id":{}}`, IDInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			calls, _, err := Parse([]byte(tt.msg), 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := calls[0].IDKind(); got != tt.want {
				t.Errorf("IDKind() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendNodeID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw, want string
		ok        bool
	}{
		{"null", "null", true},
		{"42", "42", true},
		{" 42\n", "42", true},
		{`"a"`, `"a"`, true},
		{`"\u0061"`, `"a"`, true},
		{`"\/"`, `"/"`, true},
		{`"\"\\"`, `"\"\\"`, true},
		{`"\u0000\u001F\u007f"`, "\"\\u0000\\u001f\x7f\"", true},
		{`"\b\f\n\r\t\u000b"`, `"\b\f\n\r\t\u000b"`, true},
		{`"\u00e9\u20AC"`, `"é€"`, true},
		{`"\ud83d\ude00"`, `"😀"`, true},
		{`"é"`, `"é"`, true},
		{`"\ud800"`, "", false},
		{"-1", "", false},
		{"1.0", "", false},
		{"", "", false},
		{"[]", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := AppendNodeID([]byte("x"), []byte(tt.raw))
			if ok != tt.ok || string(got) != "x"+tt.want {
				t.Errorf("AppendNodeID(%q) = %q, %v; want %q, %v", tt.raw, got[1:], ok, tt.want, tt.ok)
			}
		})
	}
}

func TestIDKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[IDKind]string{IDAbsent: "absent", IDNull: "null", IDNumber: "number",
		IDString: "string", IDInvalid: "invalid", IDInvalid + 1: "IDKind(?)"} {
		if got := k.String(); got != want {
			t.Errorf("IDKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func ExampleClassifyID() {
	for _, id := range []string{`7`, `-1`, `1e2`, `"\u0061"`, `"\ud800"`, `null`, ``} {
		fmt.Printf("%-10s %v\n", id, ClassifyID([]byte(id)))
	}
	// Output:
	// 7          number
	// -1         invalid
	// 1e2        invalid
	// "\u0061"   string
	// "\ud800"   invalid
	// null       null
	//            absent
}

func ExampleAppendNodeID() {
	id, ok := AppendNodeID(nil, []byte(`"\u0061\/b"`))
	fmt.Println(string(id), ok)
	// Output: "a/b" true
}
