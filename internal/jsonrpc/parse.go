package jsonrpc

import "unsafe"

// Call is what Parse learned about one request, notification or response.
// Method, ID and Result alias the parsed message; see the package doc.
type Call struct {
	Start, End int // byte range of the call in the message (the element, for a batch)

	Method    string // decoded method; valid when HasMethod
	HasMethod bool
	ID        []byte // raw JSON id; nil if absent (a notification) or not a string, number or null
	IDAt      int    // offset of ID in the message, valid when ID is non-nil
	HasID     bool   // the id member is present
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
// call: it is not JSON ([CodeParseError]), it is an empty batch
// ([CodeInvalidRequest]), or a batch of more than maxBatch elements
// ([CodeLimitExceeded]; maxBatch < 1 refuses every batch). dst is then
// returned unchanged. Any other problem is the call's own, in [Call.Err].
func Parse(msg []byte, maxBatch int, dst []Call) (_ []Call, batch bool, err error) {
	p := parser{scanner: scanner{msg: msg}}
	i := skipSpace(msg, 0)
	if i < len(msg) && msg[i] == '[' {
		calls, err := p.batch(i, maxBatch, dst)
		return calls, true, err
	}
	if i == len(msg) {
		return dst, false, syntaxError(i, "empty message")
	}
	dst = append(dst, Call{Start: i})
	c := &dst[len(dst)-1]
	end, err := p.element(i, c)
	if err == nil {
		err = p.trailing(end)
	}
	if err != nil {
		return dst[:len(dst)-1], false, err
	}
	c.End = end
	return dst, false, nil
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

// element parses one call: an object, or any other value, which is an
// invalid request.
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

// call parses the object at p.msg[i], filling c from its members.
func (p *parser) call(i int, c *Call) (int, error) {
	if err := p.push(i); err != nil {
		return i, err
	}
	seen := 0
	j := skipSpace(p.msg, i+1)
	if j < len(p.msg) && p.msg[j] == '}' {
		j++
	} else {
		var err error
		if j, seen, err = p.members(j, c); err != nil {
			return j, err
		}
	}
	p.depth--
	c.IsResponse = seen&(memberResult|memberError) != 0
	if !c.HasMethod && !c.IsResponse {
		c.setErr(invalidRequest(i, "missing method"))
	}
	return j, nil
}

// members parses the members of a non-empty object from its first key to
// just past its '}', and returns which envelope members it saw.
func (p *parser) members(j int, c *Call) (_, seen int, _ error) {
	for {
		if j >= len(p.msg) || p.msg[j] != '"' {
			return j, seen, syntaxError(j, "expected object key")
		}
		kEnd, escaped, err := p.str(j)
		if err != nil {
			return kEnd, seen, err
		}
		m := p.member(j, kEnd, escaped, c)
		v, err := p.colon(kEnd)
		if err != nil {
			return v, seen, err
		}
		if seen&m != 0 {
			// The node's serde refuses the whole call; keep the first value.
			c.setErr(invalidRequest(j, "duplicate member "+string(p.msg[j:kEnd])))
			m = 0
		}
		seen |= m
		if j, err = p.memberValue(v, m, c); err != nil {
			return j, seen, err
		}
		var last bool
		if j, last, err = p.next(j, '}'); err != nil || last {
			return j, seen, err
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
func (p *parser) member(start, end int, escaped bool, c *Call) int {
	key := p.msg[start+1 : end-1]
	if escaped {
		var buf [16]byte
		var ok bool
		if key, ok = unescape(buf[:0], key); !ok {
			c.setErr(invalidRequest(start, "lone surrogate in member name"))
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
func (p *parser) memberValue(v, m int, c *Call) (int, error) {
	if m == memberMethod && v < len(p.msg) && p.msg[v] == '"' {
		return p.method(v, c)
	}
	end, err := p.value(v)
	if err != nil {
		return end, err
	}
	raw := p.msg[v:end]
	switch m {
	case memberMethod:
		c.HasMethod = true
		c.setErr(invalidRequest(v, "method is not a string"))
	case memberID:
		c.HasID = true
		switch raw[0] {
		case '{', '[', 't', 'f':
			c.setErr(invalidRequest(v, "id is not a string, number or null"))
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
