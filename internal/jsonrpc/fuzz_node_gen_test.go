package jsonrpc

import "testing"

// recipe hands out the bytes of a fuzz input one at a time, then zeros.
type recipe struct {
	b []byte
	i int
}

func (r *recipe) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

func (r *recipe) pick(table []string) string { return table[r.next()%len(table)] }

// Tables for genMessage: the values and member names where the gateway and
// the node could read a message differently.
var (
	genIDs = []string{`1`, `0`, `null`, `"a"`, `"\u0061"`, `""`, `18446744073709551615`,
		`18446744073709551616`, `-0`, `-1`, `1.0`, `1e2`, `1E+2`, `1e400`, `"\ud800"`, `"\udc00\ud800"`,
		`"\ud83d\ude00"`, `"é"`, `"\u0000"`, `true`, `{}`, `[]`, `[1]`, `{"a":1}`, `99999999999999999999`}
	genMethods = []string{`"system_health"`, `"author_insertKey"`, `"a\u005fb"`, `""`, `"\ud800"`,
		`"a\ud83d\ude00"`, `"\"\\\/\b\f\n\r\t"`, `1`, `null`, `["a"]`, `"é\u00e9"`, `"\u001f\u007f"`}
	genVersions = []string{`"2.0"`, `"2\u002e0"`, `"2.1"`, `2.0`, `"2.0 "`, `null`, `"\ud800"`}
	genValues   = []string{`[]`, `{}`, `null`, `1`, `"x"`, `"\ud800"`, `{"\ud800":"\udfff"}`,
		`[[[[{"a":[1,{}]}]]]]`, `1e400`, `-0.0e-0`, `true`, `"\u0000"`}
	genKeys = []string{`"jsonrpc"`, `"id"`, `"method"`, `"params"`, `"result"`, `"error"`, `"x"`,
		`"\u0069d"`, `"m\u0065thod"`, `"\u006a\u0073\u006f\u006e\u0072\u0070\u0063"`, `"\ud800"`,
		`"Method"`, `"id "`, `"extensions"`}
	genSpace = []string{"", "", "", " ", "\n\t\r ", "\f"}
)

// genMessage builds a single message or a batch from the recipe bytes:
// mostly well-formed calls with one member varied, repeated, added or
// dropped, sometimes positional or scalar batch elements, sometimes odd
// whitespace around the whole.
func genMessage(b []byte) []byte {
	r := &recipe{b: b}
	var out []byte
	out = append(out, r.pick(genSpace)...)
	if n := r.next() % 6; n >= 4 {
		out = append(out, '[')
		for i := range n - 4 + r.next()%3 {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, r.pick(genSpace[:4])...)
			out = genElement(r, out)
		}
		out = append(out, ']')
	} else {
		out = genObject(r, out)
	}
	if r.next()%8 == 0 {
		out = append(out, r.pick([]string{" ", "\f", "x", "{}", "\n"})...)
	}
	return out
}

func genElement(r *recipe, out []byte) []byte {
	switch r.next() % 10 {
	case 0:
		return append(out, r.pick(genValues)...)
	case 1: // positional: jsonrpsee's Request or Notification from a sequence
		out = append(out, '[')
		out = append(out, r.pick(genVersions)...)
		if r.next()%2 == 0 {
			out = append(append(out, ','), r.pick(genIDs)...)
		}
		out = append(append(out, ','), r.pick(genMethods)...)
		out = append(append(out, ','), r.pick(genValues)...)
		return append(out, ']')
	case 2:
		return append(append(append(out, '['), r.pick(genIDs)...), ']')
	}
	return genObject(r, out)
}

// genObject appends an object: jsonrpc, id and method (each maybe varied or
// left out), params, then up to three members of any name, in an order the
// recipe chooses.
func genObject(r *recipe, out []byte) []byte {
	members := []string{`"jsonrpc":"2.0"`, `"id":1`, `"method":"system_health"`, `"params":[]`}
	switch r.next() % 4 {
	case 0:
		members[0] = `"jsonrpc":` + r.pick(genVersions)
	case 1:
		members[2] = `"method":` + r.pick(genMethods)
	}
	members[1] = `"id":` + r.pick(genIDs)
	if k := r.next() % 8; k < len(members) {
		members = append(members[:k], members[k+1:]...) // drop one
	}
	for range r.next() % 4 {
		key, v := r.pick(genKeys), r.pick(genValues)
		switch key {
		case `"id"`, `"\u0069d"`:
			v = r.pick(genIDs)
		case `"method"`, `"m\u0065thod"`:
			v = r.pick(genMethods)
		case `"jsonrpc"`, `"\u006a\u0073\u006f\u006e\u0072\u0070\u0063"`:
			v = r.pick(genVersions)
		}
		members = append(members, key+":"+v)
	}
	for i := range members { // a recipe-driven shuffle
		j := r.next() % len(members)
		members[i], members[j] = members[j], members[i]
	}
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r.pick(genSpace[:5])...)
		out = append(out, m...)
	}
	return append(out, '}')
}

func TestGenMessageIsJSONMostly(t *testing.T) {
	valid := 0
	for i := range 1000 {
		msg := genMessage([]byte{byte(i), byte(i >> 2), byte(i * 7), byte(i * 13), byte(i * 29), byte(i >> 4)})
		if _, _, err := Parse(msg, 100, nil); err == nil {
			valid++
		}
	}
	if valid < 300 {
		t.Errorf("only %d of 1000 generated messages parse; the generator should mostly make calls", valid)
	}
}
