package rpctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// JSON-RPC 2.0 and jsonrpsee (the server library of Substrate) error codes.
const (
	CodeParseError          = -32700
	CodeInvalidRequest      = -32600
	CodeMethodNotFound      = -32601
	CodeInvalidParams       = -32602
	CodeInternalError       = -32603
	CodeTooManySubs         = -32006
	CodeOversizedResponse   = -32008
	codeClientError         = 4003 // Substrate's state RPC "Client error"
	maxSubscriptionsPerConn = 1024
)

// Error is a JSON-RPC error object as the node sends it.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string {
	if e.Data != nil {
		return fmt.Sprintf("rpctest: %d %s: %v", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("rpctest: %d %s", e.Code, e.Message)
}

func errInvalidParams(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParams, Message: "Invalid params", Data: fmt.Sprintf(format, args...)}
}

// request is one JSON-RPC request. ID is nil when the member is absent,
// which makes the request a notification that gets no response.
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// call is the context of one method invocation.
type call struct {
	n      *Node
	conn   *wsConn // nil over HTTP
	params json.RawMessage
	subs   *[]string // subscriptions created by this message, activated after the reply
}

// handleMessage answers one WebSocket message or HTTP body: a request or a
// batch. It returns nil when nothing is to be sent back.
func (n *Node) handleMessage(c *wsConn, msg []byte, subs *[]string) []byte {
	msg = bytes.TrimSpace(msg)
	if len(msg) > 0 && msg[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(msg, &items); err != nil {
			return encodeError(nil, &Error{Code: CodeParseError, Message: "Parse error"})
		}
		if len(items) == 0 {
			return encodeError(nil, &Error{Code: CodeInvalidRequest, Message: "Invalid request"})
		}
		out := []byte{'['}
		var seen []string // recorded together, so that Seen never shows part of a batch
		defer func() { n.recordSeen(seen...) }()
		for _, it := range items {
			if r := n.handleOne(c, it, subs, &seen); r != nil {
				if len(out) > 1 {
					out = append(out, ',')
				}
				out = append(out, r...)
			}
		}
		if len(out) == 1 {
			return nil
		}
		return append(out, ']')
	}
	return n.handleOne(c, msg, subs, nil)
}

// handleOne answers a single request. Its method is recorded for Seen, or
// added to seen if that is not nil.
func (n *Node) handleOne(c *wsConn, raw []byte, subs *[]string, seen *[]string) []byte {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		if !json.Valid(raw) {
			return encodeError(nil, &Error{Code: CodeParseError, Message: "Parse error"})
		}
		return encodeError(nil, &Error{Code: CodeInvalidRequest, Message: "Invalid request"})
	}
	id, answered := nodeID(req.ID)
	if req.ID != nil && !answered {
		// jsonrpsee: the id matches no variant of Id (null, u64,
		// string), so the call fails as a Request and is read as a
		// Notification, which is never answered.
		return nil
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		return encodeError(id, &Error{Code: CodeInvalidRequest, Message: "Invalid request"})
	}
	req.ID = id
	if seen != nil {
		*seen = append(*seen, req.Method)
	} else {
		n.recordSeen(req.Method)
	}
	if n.unsafeRefused(req.Method) {
		return n.reply(req.ID, nil, errUnsafe)
	}
	m, ok := methods[req.Method]
	if !ok {
		return n.reply(req.ID, nil, &Error{Code: CodeMethodNotFound, Message: "Method not found"})
	}
	res, err := m(&call{n: n, conn: c, params: req.Params, subs: subs})
	return n.reply(req.ID, res, err)
}

// reply encodes the response to a request with id; nil for a notification.
func (n *Node) reply(id json.RawMessage, res any, err error) []byte {
	if id == nil {
		return nil
	}
	if err != nil {
		e, ok := err.(*Error)
		if !ok {
			e = &Error{Code: CodeInternalError, Message: "Internal error", Data: err.Error()}
		}
		return encodeError(id, e)
	}
	body, merr := marshal(res)
	if merr != nil {
		return encodeError(id, &Error{Code: CodeInternalError, Message: "Internal error", Data: merr.Error()})
	}
	if limit := n.opts.MaxMessageSize; limit > 0 && int64(len(body)) > limit {
		return encodeError(id, &Error{
			Code:    CodeOversizedResponse,
			Message: "Response is too big",
			Data:    fmt.Sprintf("Exceeded max limit of %d", limit),
		})
	}
	return envelope(id, "result", body)
}

// nodeID returns id as jsonrpsee echoes it and whether the node answers a
// call with it: null and unsigned 64-bit integers as they are, strings
// decoded and encoded again (so "\u0061" comes back as "a"). Any other id
// (negative, fractional, exponent, too big, bool, array, object) is not
// answered. An absent id returns nil, false.
func nodeID(raw json.RawMessage) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case raw == nil:
		return nil, false
	case string(raw) == "null":
		return raw, true
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		b, err := marshal(s)
		return b, err == nil
	case raw[0] >= '0' && raw[0] <= '9':
		if bytes.ContainsAny(raw, ".eE-+") || len(raw) > 1 && raw[0] == '0' {
			return nil, false
		}
		if _, err := strconv.ParseUint(string(raw), 10, 64); err != nil {
			return nil, false
		}
		return raw, true
	}
	return nil, false
}

func encodeError(id json.RawMessage, e *Error) []byte {
	body, _ := marshal(e)
	if id == nil {
		id = json.RawMessage("null")
	}
	return envelope(id, "error", body)
}

// envelope writes the response by hand so that the id is echoed byte for
// byte, without the re-encoding that encoding/json applies to RawMessage.
func envelope(id json.RawMessage, member string, body []byte) []byte {
	out := make([]byte, 0, len(body)+len(id)+40)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, `,"`...)
	out = append(out, member...)
	out = append(out, `":`...)
	out = append(out, body...)
	return append(out, '}')
}

// notification encodes a subscription notification in Substrate's format.
func notification(method, sub string, result any) []byte {
	type params struct {
		Subscription string `json:"subscription"`
		Result       any    `json:"result"`
	}
	b, _ := marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  params `json:"params"`
	}{"2.0", method, params{sub, result}})
	return b
}

// marshal is json.Marshal without HTML escaping and the trailing newline.
func marshal(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
