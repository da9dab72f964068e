package jsonrpc

// Readers of values inside a message Parse accepted: the params of a call,
// the result of a reply. They take raw JSON that is known to be valid (a
// Call's Params or Result) and never allocate, except Unquote for a string
// with escapes.

// Index returns the i-th element of the JSON array raw, or false if raw is
// not an array or is shorter.
func Index(raw []byte, i int) ([]byte, bool) {
	raw = TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	s := scanner{msg: raw}
	j := skipSpace(raw, 1)
	if j < len(raw) && raw[j] == ']' {
		return nil, false
	}
	for n := 0; ; n++ {
		end, err := s.value(j)
		if err != nil {
			return nil, false
		}
		if n == i {
			return raw[j:end], true
		}
		var done bool
		if j, done, err = s.next(end, ']'); err != nil || done {
			return nil, false
		}
	}
}

// Member returns the value of the member name of the JSON object raw,
// comparing names after unescaping as the node does, or false if raw is not
// an object or has no such member. With duplicate names the first wins.
func Member(raw []byte, name string) ([]byte, bool) {
	raw = TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	s := scanner{msg: raw}
	j := skipSpace(raw, 1)
	if j < len(raw) && raw[j] == '}' {
		return nil, false
	}
	for {
		kEnd, escaped, err := s.str(j)
		if err != nil {
			return nil, false
		}
		key := raw[j+1 : kEnd-1]
		match := !escaped && string(key) == name
		if escaped {
			var buf [64]byte
			k, ok := unescape(buf[:0], key)
			match = ok && string(k) == name
		}
		v, err := s.colon(kEnd)
		if err != nil {
			return nil, false
		}
		end, err := s.value(v)
		if err != nil {
			return nil, false
		}
		if match {
			return raw[v:end], true
		}
		var done bool
		if j, done, err = s.next(end, '}'); err != nil || done {
			return nil, false
		}
	}
}

// Param returns a call's parameter given by position i in an array of
// params, or by name in an object of params, as the node's method
// definitions accept both.
func Param(params []byte, i int, name string) ([]byte, bool) {
	params = TrimSpace(params)
	if len(params) > 0 && params[0] == '{' {
		return Member(params, name)
	}
	return Index(params, i)
}

// Unquote returns the decoded contents of the JSON string raw, or false if
// raw is not a string or holds a lone surrogate (which the node refuses).
func Unquote(raw []byte) (string, bool) {
	raw = TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	s := scanner{msg: raw}
	end, escaped, err := s.str(0)
	if err != nil || end != len(raw) {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if !escaped {
		return string(body), true
	}
	b, ok := unescape(make([]byte, 0, len(body)), body)
	return string(b), ok
}

// IsEmpty reports whether raw is absent, null, an empty array or an empty
// object.
func IsEmpty(raw []byte) bool {
	raw = TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	if raw[0] != '[' && raw[0] != '{' {
		return false
	}
	return skipSpace(raw, 1) == len(raw)-1
}
