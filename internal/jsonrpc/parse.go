package jsonrpc

import "unsafe"

// Call is what Parse learned about one request, notification or response.
// Method, ID and Result alias the parsed message; see the package doc.
type Call struct {
	Start, End int // byte range of the call in the message (the element, for a batch)

	Method    string // decoded method; valid when HasMethod
	HasMethod bool
	ID        []byte // raw JSON id; nil if absent, an array, object or boolean, given twice, or with Err one the node cannot read
	IDAt      int    // offset of ID in the message, valid when ID is non-nil
	HasID     bool   // the id member is present; see IDKind for how the node reads it
	HasParams bool
	Params    []byte // raw JSON params, nil if absent

	IsResponse bool   // has a result or an error member
	Result     []byte // raw JSON result, nil if absent
	HasError   bool

	// Err is non-nil if the call is valid JSON but not a valid JSON-RPC
	// message: answer it with Err's code and ID instead of judging Method.
	Err *Error
}

// Parse validates msg and appends one Call to dst for a single message, or
// one per element for a batch (batch true). Reuse dst across messages, as
// Parse(msg, maxBatch, calls[:0]), to parse without allocating.
//
// err is non-nil only when the message as a whole cannot be answered call by
// call: it is not JSON, or not a JSON-RPC message the node can answer with an
// id ([CodeParseError]), it is an empty batch ([CodeInvalidRequest]), or a
// batch of more than maxBatch elements ([CodeLimitExceeded]; maxBatch < 1
// refuses every batch). dst is then returned unchanged. Any other problem is
// the call's own, in [Call.Err]. See the package doc for how Parse follows the
// node's reading.
func Parse(msg []byte, maxBatch int, dst []Call) (_ []Call, batch bool, err error) {
	p := parser{scanner: scanner{msg: msg}}
	i, err := start(msg)
	if err != nil {
		return dst, false, err
	}
	if msg[i] == '[' {
		calls, err := p.batch(i, maxBatch, dst)
		return calls, true, err
	}
	dst = append(dst, Call{Start: i})
	c := &dst[len(dst)-1]
	end, err := p.call(i, c)
	if err == nil {
		err = p.trailing(end)
	}
	if err == nil && c.Err != nil && c.ID == nil {
		// jsonrpsee answers an invalid request with the id it can read,
		// and a parse error when it can read none (prepare_error).
		err = syntaxError(c.Err.Offset, c.Err.Reason+", and no id")
	}
	if err != nil {
		return dst[:len(dst)-1], false, err
	}
	c.End = end
	return dst, false, nil
}

// start returns the index of the '{' or '[' a message starts with. Like
// jsonrpsee-server 0.24 (src/transport/ws.rs background_task and
// src/transport/http.rs read_body), it looks only at the first 128 bytes and
// skips Rust's ASCII whitespace there, which includes form feed. A message
// starting with anything else (a string, a number, a BOM) is a parse error to
// the node (-32700, id null), and so it is here.
func start(msg []byte) (int, error) {
	for i, c := range msg[:min(len(msg), 128)] {
		switch c {
		case ' ', '\t', '\n', '\r', '\f':
			continue
		case '{', '[':
			return i, nil
		}
		return i, syntaxError(i, "message is not an object or array")
	}
	if len(msg) > 128 {
		return 128, syntaxError(128, "no '{' or '[' in the first 128 bytes")
	}
	return len(msg), syntaxError(len(msg), "empty message")
}

type parser struct {
	scanner
}

func (p *parser) trailing(end int) error {
	if j := skipSpace(p.msg, end); j != len(p.msg) {
		return syntaxError(j, "data after the JSON value")
	}
	return nil
}

func (p *parser) batch(i, maxBatch int, dst []Call) ([]Call, error) {
	base := len(dst)
	p.depth = 1
	j := skipSpace(p.msg, i+1)
	if j < len(p.msg) && p.msg[j] == ']' {
		if err := p.trailing(j + 1); err != nil {
			return dst, err
		}
		return dst, invalidRequest(i, "empty batch")
	}
	for n := 0; ; n++ {
		if n >= maxBatch {
			return dst[:base], &Error{Code: CodeLimitExceeded, Offset: j, Reason: "batch too long"}
		}
		dst = append(dst, Call{Start: j})
		c := &dst[len(dst)-1]
		end, err := p.element(j, c)
		if err != nil {
			return dst[:base], err
		}
		c.End = end
		var done bool
		if j, done, err = p.next(end, ']'); err != nil {
			return dst[:base], err
		}
		if done {
			if err := p.trailing(j); err != nil {
				return dst[:base], err
			}
			return dst, nil
		}
	}
}

// element parses one batch element: an object, or any other value, which
// is an invalid request answered with id null. (serde_json would also read
// an array as a struct with positional fields, so the node runs
// ["2.0",1,"m",null] as a call of m; the gateway refuses every such element
// rather than judge a form no client uses.)
func (p *parser) element(i int, c *Call) (int, error) {
	if i < len(p.msg) && p.msg[i] == '{' {
		return p.call(i, c)
	}
	end, err := p.value(i)
	if err == nil {
		c.Err = invalidRequest(i, "request is not an object")
	}
	return end, err
}

// Envelope members, as bits for duplicate detection.
const (
	memberJSONRPC = 1 << iota
	memberID
	memberMethod
	memberParams
	memberResult
	memberError
)

// envelope is what call learns about an object beyond its Call.
type envelope struct {
	seen, dup int  // members seen, and seen more than once
	badKey    bool // a member name holds a lone surrogate escape
	version   bool // jsonrpc is the string "2.0"
}

// call parses the object at p.msg[i], filling c from its members, and
// decides c the way the node does. jsonrpsee tries the message as its
// Request {jsonrpc, id, method, params}, then as its Notification
// {jsonrpc, method, params}, then as InvalidRequest {id}; serde ignores any
// other member, and refuses a struct when a member name does not decode, one
// of its fields appears twice, a required field is missing or a value does
// not fit its field's type. So a call with an id the node cannot read, or
// with two ids, still runs, as a notification.
func (p *parser) call(i int, c *Call) (int, error) {
	if err := p.push(i); err != nil {
		return i, err
	}
	var env envelope
	j := skipSpace(p.msg, i+1)
	if j < len(p.msg) && p.msg[j] == '}' {
		j++
	} else {
		var err error
		if j, err = p.members(j, c, &env); err != nil {
			return j, err
		}
	}
	p.depth--
	c.IsResponse = env.seen&(memberResult|memberError) != 0
	p.decide(i, c, &env)
	return j, nil
}

// decide sets c.Err and trims c.ID to what the node reads (see call).
func (p *parser) decide(i int, c *Call, env *envelope) {
	if env.dup&memberID != 0 {
		c.ID = nil // neither value: the node ignores the id (IDKind: IDInvalid)
	}
	switch {
	case env.badKey:
		c.setErr(invalidRequest(i, "lone surrogate in member name"))
	case !c.HasMethod && c.IsResponse:
		// A response (the node's, or a client's answer to a server
		// request): the gateway reads its id and result, once each.
		if env.dup&(memberResult|memberError) != 0 {
			c.setErr(invalidRequest(i, "duplicate member result or error"))
		}
	case !c.HasMethod:
		c.setErr(invalidRequest(i, "missing method"))
	case env.seen&memberJSONRPC == 0:
		c.setErr(invalidRequest(i, `missing jsonrpc "2.0"`))
	case !env.version:
		c.setErr(invalidRequest(i, `jsonrpc is not "2.0"`))
	}
	if c.Err != nil && !env.badKey && env.dup&memberID == 0 {
		switch ClassifyID(c.ID) {
		case IDNull, IDNumber, IDString:
			return // answered with this id
		}
	}
	if c.Err != nil {
		c.ID = nil // answered with id null
	}
}

// members parses the members of a non-empty object from its first key to
// just past its '}', recording in env which envelope members it saw.
func (p *parser) members(j int, c *Call, env *envelope) (int, error) {
	for {
		if j >= len(p.msg) || p.msg[j] != '"' {
			return j, syntaxError(j, "expected object key")
		}
		kEnd, escaped, err := p.str(j)
		if err != nil {
			return kEnd, err
		}
		m := p.member(j, kEnd, escaped, env)
		v, err := p.colon(kEnd)
		if err != nil {
			return v, err
		}
		if env.seen&m != 0 {
			env.dup |= m
			if m&(memberJSONRPC|memberMethod|memberParams) != 0 {
				// serde refuses both Request and Notification.
				c.setErr(invalidRequest(j, "duplicate member "+string(p.msg[j:kEnd])))
			}
			m = 0 // keep the first value
		}
		env.seen |= m
		if j, err = p.memberValue(v, m, c, env); err != nil {
			return j, err
		}
		var last bool
		if j, last, err = p.next(j, '}'); err != nil || last {
			return j, err
		}
	}
}

func (c *Call) setErr(err *Error) {
	if c.Err == nil {
		c.Err = err
	}
}

// member returns the envelope member bit of the key in p.msg[start:end]
// (quotes included), comparing after unescaping as serde_json does, or 0.
func (p *parser) member(start, end int, escaped bool, env *envelope) int {
	key := p.msg[start+1 : end-1]
	if escaped {
		var buf [16]byte
		var ok bool
		if key, ok = unescape(buf[:0], key); !ok {
			env.badKey = true
			return 0
		}
	}
	switch string(key) {
	case "jsonrpc":
		return memberJSONRPC
	case "id":
		return memberID
	case "method":
		return memberMethod
	case "params":
		return memberParams
	case "result":
		return memberResult
	case "error":
		return memberError
	}
	return 0
}

// memberValue parses the value at p.msg[v] of member m (0 for any other).
func (p *parser) memberValue(v, m int, c *Call, env *envelope) (int, error) {
	if m == memberMethod && v < len(p.msg) && p.msg[v] == '"' {
		return p.method(v, c)
	}
	end, err := p.value(v)
	if err != nil {
		return end, err
	}
	raw := p.msg[v:end]
	switch m {
	case memberJSONRPC:
		var buf [8]byte
		s, ok := decodeString(buf[:0], raw)
		env.version = ok && string(s) == "2.0"
	case memberMethod:
		c.HasMethod = true
		c.setErr(invalidRequest(v, "method is not a string"))
	case memberID:
		c.HasID = true
		switch raw[0] {
		case '{', '[', 't', 'f':
			// IDKind reports IDInvalid: the node runs the call as a
			// notification.
		default:
			c.ID, c.IDAt = raw, v
		}
	case memberParams:
		c.HasParams = true
		c.Params = raw
	case memberResult:
		c.Result = raw
	case memberError:
		c.HasError = true
	}
	return end, nil
}

// method parses the string method value at p.msg[v].
func (p *parser) method(v int, c *Call) (int, error) {
	end, escaped, err := p.str(v)
	if err != nil {
		return end, err
	}
	c.HasMethod = true
	raw := p.msg[v+1 : end-1]
	if escaped {
		var ok bool
		if raw, ok = unescape(make([]byte, 0, len(raw)), raw); !ok {
			c.setErr(invalidRequest(v, "lone surrogate in method"))
		}
	}
	if len(raw) > 0 {
		c.Method = unsafe.String(unsafe.SliceData(raw), len(raw))
	}
	return end, nil
}
