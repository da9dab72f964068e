package jsonrpc

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNodeDifferential checks that the gateway reads every message as the
// node does. The node's reading comes from testdata/nodeparse: jsonrpsee
// 0.24's request types (Request, Notification, InvalidRequest, Id,
// TwoPointZero) and its single/batch classification, on serde_json. The
// gateway's is Parse plus Call.IDKind and AppendNodeID (goReading).
//
// The property: for each message both say the same thing, in the same
// words: a parse error; an empty batch; or, for the message or for each
// batch element in order, a call of method M answered with id I, a
// notification of method M (run, never answered), or an invalid request
// answered with id I (ids as the node writes them back). The only
// differences allowed are the gateway refusing more than the node:
//   - the whole message, as a parse error, when it is not valid UTF-8 or
//     nests deeper than MaxDepth (the node has no nesting limit outside ids,
//     and accepts invalid UTF-8 inside strings it ignores);
//   - a batch element that is an array (serde_json reads it as a positional
//     request, which the gateway answers as invalid with id null).
//
// Each input is checked twice: the fuzzed bytes as they are, and a message
// generated from the second argument (genMessage), whose grammar reaches
// the envelope's corners (ids of every kind, repeated and escaped members,
// jsonrpc variants, positional elements) far more often than byte mutation.
func FuzzNodeDifferential(f *testing.F) {
	for _, s := range nodeSeeds {
		f.Add([]byte(s), []byte(nil))
	}
	for _, s := range seedMessages {
		f.Add([]byte(s), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	}
	for i := range 64 {
		f.Add([]byte(nil), []byte{byte(i), byte(i * 7), byte(i * 13), byte(i * 31), 1, byte(i), 3})
	}
	n := startNodeparse(f)
	f.Fuzz(func(t *testing.T, msg, recipe []byte) {
		compareWithNode(t, n, msg)
		if len(recipe) > 0 {
			compareWithNode(t, n, genMessage(recipe))
		}
	})
}

// nodeSeeds are the edges where the gateway and the node could part.
var nodeSeeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":-0,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1.0,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1e2,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1e400,"method":"a"}`,
	`{"jsonrpc":"2.0","id":18446744073709551615,"method":"a"}`,
	`{"jsonrpc":"2.0","id":18446744073709551616,"method":"a"}`,
	`{"jsonrpc":"2.0","id":-1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":01,"method":"a"}`,
	`{"jsonrpc":"2.0","id":"\u0061","method":"\u0062"}`,
	`{"jsonrpc":"2.0","id":"\ud800","method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a\udc00"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","x":"\ud800","params":["\udfff"]}`,
	`{"jsonrpc":"2.0","id":1,"\ud800":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
	`{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"\u0069d":2,"method":"a"}`,
	`{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":1,"params":2}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","unknown":1,"unknown":2}`,
	`{"id":1,"method":"a"}`,
	`{"jsonrpc":"2.1","id":1,"method":"a"}`,
	`{"jsonrpc":2.0,"id":1,"method":"a"}`,
	`{"jsonrpc":"2\u002e0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":null}`,
	`{"jsonrpc":"2.0","id":{},"method":"a"}`,
	`{"jsonrpc":"2.0","id":[1],"method":"a"}`,
	`{"jsonrpc":"2.0","id":true,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":1}`,
	`{"jsonrpc":"2.0","method":1}`,
	`{"jsonrpc":"2.0","id":1}`,
	`{"jsonrpc":"2.0","id":1,"result":1}`,
	`{"jsonrpc":"2.0","result":1}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","result":1,"result":2}`,
	`{}`,
	`[]`,
	` [ ] x`,
	`42`,
	`"a"`,
	"\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":1,"method":"a"}`,
	"\f\t " + `{"jsonrpc":"2.0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a"}` + "\f",
	`{"jsonrpc":"2.0","id":1,"method":"a"} x`,
	strings.Repeat(" ", 128) + `{"jsonrpc":"2.0","id":1,"method":"a"}`,
	strings.Repeat(" ", 127) + `{"jsonrpc":"2.0","id":1,"method":"a"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","x":"` + "\xff" + `"}`,
	`{"jsonrpc":"2.0","id":1,"method":"a","params":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	`{"jsonrpc":"2.0","id":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `,"method":"a"}`,
	`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":-1,"method":"b"},{"jsonrpc":"2.0","method":"c"}]`,
	`[["2.0",1,"author_rotateKeys",null],["2.0","n",null],[7],[-1],1,"x",{}]`,
	`[{"jsonrpc":"2.0","id":-1,"method":1},{"id":"\u0061"},{"jsonrpc":"2.0","method":"a","id":1,"id":1}]`,
	`[{"jsonrpc":"2.0","id":1,"method":"a","x":"` + "\xff" + `"}]`,
}

// compareWithNode fails t unless the gateway reads msg as the node does,
// or refuses more (see FuzzNodeDifferential).
func compareWithNode(t *testing.T, n *nodeparse, msg []byte) {
	t.Helper()
	node := n.read(t, msg)
	got, elems := goReading(msg)
	if got == node {
		return
	}
	if got == "parse" && (!utf8.Valid(msg) || nestingDepth(msg) > MaxDepth) {
		return // the gateway refuses what it will not judge
	}
	if nodeElems := splitReading(node); elems != nil && len(nodeElems) == len(elems) {
		same := true
		for i, e := range elems {
			same = same && (e.reading == nodeElems[i] || e.array && e.reading == "invalid\tnull")
		}
		if same {
			return // only positional elements differ, refused by the gateway
		}
	}
	t.Fatalf("message %q\n gateway reads %q\n    node reads %q", msg, got, node)
}

type goElem struct {
	reading string
	array   bool // the element is a JSON array
}

// goReading is the gateway's reading of msg, in nodeparse's format; for a
// batch, also each element's.
func goReading(msg []byte) (string, []goElem) {
	calls, batch, err := Parse(msg, math.MaxInt, nil)
	if err != nil {
		switch e := err.(*Error); {
		case e.Code == CodeParseError:
			return "parse", nil
		case e.Code == CodeInvalidRequest && e.Reason == "empty batch":
			return "empty", nil
		}
		return "unexpected " + err.Error(), nil
	}
	if !batch {
		return readCall(&calls[0], true), nil
	}
	var b strings.Builder
	b.WriteString("batch")
	elems := make([]goElem, len(calls))
	for i := range calls {
		c := &calls[i]
		elems[i] = goElem{readCall(c, false), msg[c.Start] == '['}
		b.WriteString("\t" + elems[i].reading)
	}
	return b.String(), elems
}

// readCall says what the node does with c, as Parse and IDKind tell it.
func readCall(c *Call, single bool) string {
	id, ok := AppendNodeID(nil, c.ID)
	if !ok {
		id = []byte("null")
	}
	method := string(appendSerdeString(nil, []byte(c.Method)))
	switch {
	case c.Err != nil:
		return "invalid\t" + string(id)
	case !c.HasMethod && c.IsResponse:
		// A client's response object, which the gateway forwards: to the
		// node it is an invalid request, or a parse error when alone
		// without an id it can read.
		if single && !ok {
			return "parse"
		}
		if c.HasID && c.ID == nil {
			id = []byte("null") // two ids
		}
		return "invalid\t" + string(id)
	}
	switch c.IDKind() {
	case IDNull, IDNumber, IDString:
		return "call\t" + string(id) + "\t" + method
	}
	return "notif\t" + method
}

// splitReading splits a batch reading into its elements' readings; nil for
// any other reading.
func splitReading(s string) []string {
	f := strings.Split(s, "\t")
	if f[0] != "batch" {
		return nil
	}
	var elems []string
	for i := 1; i < len(f); {
		n := 2
		if f[i] == "call" {
			n = 3
		}
		if i+n > len(f) {
			return nil
		}
		elems = append(elems, strings.Join(f[i:i+n], "\t"))
		i += n
	}
	return elems
}

// nestingDepth returns the deepest nesting of arrays and objects in msg,
// outside strings, whether or not msg is valid JSON.
func nestingDepth(msg []byte) int {
	depth, deepest, inStr := 0, 0, false
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func TestSplitReading(t *testing.T) {
	t.Parallel()
	got := splitReading("batch\tcall\t1\t\"a\"\tnotif\t\"n\"\tinvalid\tnull")
	if len(got) != 3 || got[0] != "call\t1\t\"a\"" || got[1] != "notif\t\"n\"" || got[2] != "invalid\tnull" {
		t.Errorf("splitReading = %q", got)
	}
	for _, s := range []string{"parse", "empty", "call\t1\t\"a\"", "batch\tcall\t1"} {
		if got := splitReading(s); got != nil {
			t.Errorf("splitReading(%q) = %q, want nil", s, got)
		}
	}
}

func TestNestingDepth(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]int{
		`1`: 0, `[]`: 1, `[{"a":[1]}]`: 3, `["[[[", "\"[["]`: 1, `{"a":"\\"}`: 1, `[[[`: 3,
	} {
		if got := nestingDepth([]byte(msg)); got != want {
			t.Errorf("nestingDepth(%q) = %d, want %d", msg, got, want)
		}
	}
}
