package jsonrpc

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// Seeds shared by the message fuzz targets; more live in testdata/fuzz.
var seedMessages = []string{
	`{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":[]}`,
	`{"\u006dethod":"author_insertKey","id":"x"}`,
	`{"method":"system_health","method":"author_rotateKeys"}`,
	`[{"method":"a","id":1},2,{"method":"b"}]`,
	`{"jsonrpc":"2.0","result":{"a":[1,2.5e3,-0]},"id":null}`,
	`{"method":"a\ud83d\ude00\ud800"}`,
	`[]`,
}

func addSeeds(f *testing.F) {
	for _, s := range seedMessages {
		f.Add([]byte(s))
	}
}

// FuzzParse checks that Parse never panics and that what it returns is
// consistent with the message.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		calls, batch, err := Parse(msg, 8, nil)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || len(calls) != 0 || e.Offset < 0 || e.Offset > len(msg) {
				t.Fatalf("Parse error = %#v with %d calls", err, len(calls))
			}
			switch e.Code {
			case CodeParseError, CodeInvalidRequest, CodeLimitExceeded:
			default:
				t.Fatalf("unexpected code %d", e.Code)
			}
			return
		}
		if len(calls) == 0 || !batch && len(calls) != 1 || len(calls) > 8 {
			t.Fatalf("batch=%v with %d calls", batch, len(calls))
		}
		for _, c := range calls {
			if c.Start < 0 || c.End <= c.Start || c.End > len(msg) {
				t.Fatalf("call range [%d,%d) outside message of %d bytes", c.Start, c.End, len(msg))
			}
			if c.Err == nil && !utf8.ValidString(c.Method) {
				t.Fatalf("method %q is not UTF-8", c.Method)
			}
			if c.ID != nil && !json.Valid(c.ID) {
				t.Fatalf("id %q is not JSON", c.ID)
			}
		}
	})
}

// FuzzParseDifferential compares Parse with encoding/json.
func FuzzParseDifferential(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		calls, batch, err := Parse(msg, 1<<20, nil)
		// Like the node, Parse skips a form feed before the message.
		valid := json.Valid(bytes.TrimLeft(msg, " \t\n\r\f"))
		if !valid {
			if err == nil {
				t.Fatalf("Parse accepted invalid JSON %q", msg)
			}
			return
		}
		if err != nil {
			e := err.(*Error)
			switch {
			case e.Code == CodeInvalidRequest && e.Reason == "empty batch":
			case e.Code == CodeParseError && e.Reason == reasonTooDeep:
			case e.Code == CodeParseError && !utf8.Valid(msg):
			case e.Code == CodeParseError && strings.HasSuffix(e.Reason, ", and no id"):
			case e.Code == CodeParseError && e.Reason == "message is not an object or array":
			case e.Code == CodeParseError && e.Reason == "no '{' or '[' in the first 128 bytes":
			default:
				t.Fatalf("Parse refused valid JSON %q: %v", msg, err)
			}
			return
		}
		elems := []json.RawMessage{bytes.TrimLeft(msg, " \t\n\r\f")}
		if batch {
			elems = nil
			if err := json.Unmarshal(msg, &elems); err != nil {
				t.Fatalf("batch %q: %v", msg, err)
			}
		}
		if len(elems) != len(calls) {
			t.Fatalf("%d calls, encoding/json sees %d", len(calls), len(elems))
		}
		for i, c := range calls {
			compareCall(t, TrimSpace(elems[i]), c)
		}
	})
}

var envelopeMembers = map[string]bool{"jsonrpc": true, "id": true, "method": true, "params": true, "result": true, "error": true}

func compareCall(t *testing.T, elem []byte, c Call) {
	t.Helper()
	if elem[0] != '{' {
		if c.Err == nil || c.Err.Reason != "request is not an object" {
			t.Fatalf("element %q: Err = %v, want not an object", elem, c.Err)
		}
		return
	}
	dups := duplicateEnvelope(t, elem)
	// The node refuses a call with two jsonrpc, method or params members,
	// and the gateway a response with two results or errors; two ids make
	// a call a notification.
	refused := dups["jsonrpc"] || dups["method"] || dups["params"] ||
		!c.HasMethod && (dups["result"] || dups["error"])
	if refused && c.Err == nil {
		t.Fatalf("element %q has duplicate members %v but Parse accepted it", elem, dups)
	}
	if c.Err != nil && strings.HasPrefix(c.Err.Reason, "duplicate") && !refused {
		t.Fatalf("element %q: Parse reported %v, encoding/json sees no such duplicate", elem, c.Err)
	}
	if dups["id"] && (c.ID != nil || !c.HasID || c.IDKind() != IDInvalid) {
		t.Fatalf("element %q: two ids, but ID = %q, HasID %v", elem, c.ID, c.HasID)
	}
	if len(dups) > 0 {
		return // encoding/json keeps the last value; Parse the first, or refuses
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(elem, &m); err != nil {
		t.Fatalf("element %q: %v", elem, err)
	}
	raw, has := m["method"]
	if has != c.HasMethod {
		t.Fatalf("element %q: HasMethod = %v, encoding/json: %v", elem, c.HasMethod, has)
	}
	var method string
	if has && json.Unmarshal(raw, &method) != nil && c.Err == nil {
		t.Fatalf("element %q: non-string method accepted", elem)
	}
	if c.Err == nil && method != c.Method {
		t.Fatalf("element %q: Method = %q, encoding/json: %q", elem, c.Method, method)
	}
	id, has := m["id"]
	if has != c.HasID || c.ID != nil && !bytes.Equal(id, c.ID) || c.Err == nil && has && c.ID == nil && id[0] != '{' && id[0] != '[' && id[0] != 't' && id[0] != 'f' {
		t.Fatalf("element %q: ID = %q (%v), encoding/json: %q (%v)", elem, c.ID, c.HasID, id, has)
	}
	_, hasParams := m["params"]
	result, hasResult := m["result"]
	_, hasError := m["error"]
	if hasParams != c.HasParams || hasError != c.HasError || (hasResult || hasError) != c.IsResponse ||
		!bytes.Equal(result, c.Result) {
		t.Fatalf("element %q: flags %+v disagree with encoding/json", elem, c)
	}
	if !c.HasMethod && !c.IsResponse && c.Err == nil {
		t.Fatalf("element %q: no method accepted", elem)
	}
}

// duplicateEnvelope returns the envelope members the object elem repeats.
func duplicateEnvelope(t *testing.T, elem []byte) map[string]bool {
	dec := json.NewDecoder(bytes.NewReader(elem))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	seen, dups := map[string]bool{}, map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		if envelopeMembers[key] && seen[key] {
			dups[key] = true
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return dups
}

// FuzzBatchRejoin checks that the element ranges of a batch, re-joined with
// AppendBatch, whole or every other one, parse to the same calls.
func FuzzBatchRejoin(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		calls, batch, err := Parse(msg, 64, nil)
		if err != nil || !batch {
			return
		}
		var all, odd [][]byte
		var oddCalls []Call
		for i, c := range calls {
			all = append(all, msg[c.Start:c.End])
			if i%2 == 1 {
				odd = append(odd, msg[c.Start:c.End])
				oddCalls = append(oddCalls, c)
			}
		}
		rejoin(t, msg, calls, AppendBatch(nil, all...))
		if len(odd) > 0 {
			rejoin(t, msg, oddCalls, AppendBatch([]byte(" "), odd...))
		}
	})
}

func rejoin(t *testing.T, msg []byte, want []Call, joined []byte) {
	t.Helper()
	got, batch, err := Parse(joined, 64, nil)
	if err != nil || !batch {
		t.Fatalf("re-joined batch %q: batch=%v err=%v", joined, batch, err)
	}
	if diff := cmp.Diff(viewsOf(msg, want), viewsOf(joined, got)); diff != "" {
		t.Fatalf("re-joined batch %q (-original +re-joined):\n%s", joined, diff)
	}
}

// FuzzAppendError checks that AppendError writes valid JSON that round-trips
// the id, code, message and data.
func FuzzAppendError(f *testing.F) {
	f.Add(uint8(0), "", int64(0), CodeParseError, "Parse error", "")
	f.Add(uint8(1), "", int64(-7), CodeMethodNotFound, "method author_insertKey is not allowed", "unsafe")
	f.Add(uint8(2), "id\"\\\x00\xff", int64(0), CodeInvalidRequest, "q\"\n\x1f\xffé", "\u2028")
	f.Add(uint8(3), "", int64(0), CodeLimitExceeded, "", "")
	f.Fuzz(func(t *testing.T, idKind uint8, idStr string, idNum int64, code int, message, data string) {
		var id []byte
		switch idKind % 4 {
		case 1:
			id = strconv.AppendInt(nil, idNum, 10)
		case 2:
			id = AppendString(nil, idStr)
		case 3:
			id = []byte("null")
		}
		out := AppendError([]byte("x"), id, code, message, data)[1:]
		if !json.Valid(out) {
			t.Fatalf("AppendError wrote invalid JSON %q", out)
		}
		var resp struct {
			JSONRPC string `json:"jsonrpc"`
			Error   struct {
				Code    int     `json:"code"`
				Message string  `json:"message"`
				Data    *string `json:"data"`
			} `json:"error"`
			ID json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		wantID := id
		if id == nil {
			wantID = []byte("null")
		}
		if resp.JSONRPC != "2.0" || resp.Error.Code != code || !bytes.Equal(resp.ID, wantID) ||
			resp.Error.Message != viaEncodingJSON(t, message) ||
			(data == "") != (resp.Error.Data == nil) || data != "" && *resp.Error.Data != viaEncodingJSON(t, data) {
			t.Fatalf("AppendError(%q, %d, %q, %q) = %s", id, code, message, data, out)
		}
		calls, _, err := Parse(out, 1, nil)
		if err != nil || !calls[0].IsResponse || !calls[0].HasError || !bytes.Equal(calls[0].ID, wantID) {
			t.Fatalf("Parse(%s) = %+v, %v", out, calls, err)
		}
	})
}

// viaEncodingJSON returns s as encoding/json round-trips it (invalid UTF-8
// bytes become U+FFFD).
func viaEncodingJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
