package jsonrpc

// How a Substrate node reads a call's id. Its RPC server is jsonrpsee
// (polkadot-sdk pins jsonrpsee 0.24.x), whose request id type is, in
// jsonrpsee-types 0.24 src/params.rs:
//
//	#[serde(deny_unknown_fields)]
//	#[serde(untagged)]
//	pub enum Id<'a> { Null, Number(u64), #[serde(borrow)] Str(Cow<'a, str>) }
//
// read by serde_json. An integer literal serde_json cannot hold in a u64 (a
// minus sign, -0 included, or more than 2^64-1) is parsed as i64 or f64 and
// matches no variant, as does a literal with a fraction or an exponent
// ("1.0", "1e2"); so do true, false, arrays and objects, and a string holding
// a lone UTF-16 surrogate escape, which serde_json refuses to decode. A call
// whose id matches no variant fails as jsonrpsee's Request but succeeds as its
// Notification (which has no id field and ignores unknown members): the node
// runs it and never answers. See jsonrpsee-server 0.24 src/server.rs
// handle_rpc_call.

// IDKind is how the node reads a call's id member.
type IDKind uint8

const (
	IDAbsent  IDKind = iota // no id member: a notification
	IDNull                  // null: a call, answered with id null
	IDNumber                // an unsigned 64-bit integer: a call
	IDString                // a string: a call, answered with the string re-encoded
	IDInvalid               // present but none of these: the node treats the call as a notification
)

var idKindNames = [...]string{"absent", "null", "number", "string", "invalid"}

func (k IDKind) String() string {
	if int(k) < len(idKindNames) {
		return idKindNames[k]
	}
	return "IDKind(?)"
}

// ClassifyID reports how the node reads raw, the id member's JSON value as
// in [Call.ID]. A nil or empty raw is [IDAbsent]; callers that have a Call
// should use [Call.IDKind], which also knows an id member that is present
// but has no single value.
func ClassifyID(raw []byte) IDKind {
	raw = TrimSpace(raw)
	if len(raw) == 0 {
		return IDAbsent
	}
	switch c := raw[0]; {
	case c == 'n':
		if string(raw) == "null" {
			return IDNull
		}
	case c >= '0' && c <= '9':
		if isUint64(raw) {
			return IDNumber
		}
	case c == '"':
		var buf [64]byte // most ids fit: no allocation per call
		if _, ok := decodeString(buf[:0], raw); ok {
			return IDString
		}
	}
	return IDInvalid
}

// isUint64 reports whether raw is a JSON integer literal serde_json reads as
// a u64: digits only (no sign, fraction or exponent), no leading zero, at
// most 18446744073709551615.
func isUint64(raw []byte) bool {
	if len(raw) > 1 && raw[0] == '0' {
		return false
	}
	const max = "18446744073709551615"
	if len(raw) > len(max) {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(raw) < len(max) || string(raw) <= max
}

// decodeString appends the decoded contents of the JSON string raw (with its
// quotes) to dst. ok is false if raw is not a well-formed JSON string or
// holds a lone surrogate escape, which serde_json refuses.
func decodeString(dst, raw []byte) (_ []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return dst, false
	}
	s := scanner{msg: raw}
	end, escaped, err := s.str(0)
	if err != nil || end != len(raw) {
		return dst, false
	}
	body := raw[1 : len(raw)-1]
	if !escaped {
		return append(dst, body...), true
	}
	return unescape(dst, body)
}

// IDKind reports how the node reads c's id: [ClassifyID] of [Call.ID], or
// [IDInvalid] when the id member is present without a single value (it
// appears more than once; the node ignores it, so the call is a
// notification).
func (c *Call) IDKind() IDKind {
	if c.HasID && c.ID == nil {
		return IDInvalid
	}
	return ClassifyID(c.ID)
}

// AppendNodeID appends to dst the id as the node writes it in its reply,
// and reports whether the node answers raw at all (its kind is [IDNull],
// [IDNumber] or [IDString]). jsonrpsee echoes the id it decoded, serialised
// again by serde_json: numbers and null unchanged, strings decoded and
// re-escaped (`"\u0061"` comes back as `"a"`), so matching a reply to a call
// by raw bytes misses; compare AppendNodeID forms instead.
func AppendNodeID(dst, raw []byte) (_ []byte, ok bool) {
	switch ClassifyID(raw) {
	case IDNull, IDNumber:
		return append(dst, TrimSpace(raw)...), true
	case IDString:
		s, _ := decodeString(nil, TrimSpace(raw))
		return appendSerdeString(dst, s), true
	}
	return dst, false
}

// appendSerdeString appends s as serde_json's serializer writes a string:
// '"' and '\\' escaped, the control characters U+0000 to U+001F escaped
// (\b \t \n \f \r, else \u00xx in lowercase hex), everything else, U+007F
// and non-ASCII included, as is.
func appendSerdeString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(dst, '"')
}
