package jsonrpc

import "strconv"

// JSON-RPC 2.0 error codes, plus the EIP-1474 server code the gateway uses.
const (
	CodeParseError     = -32700 // message is not valid JSON
	CodeInvalidRequest = -32600 // valid JSON, but not a valid request
	CodeMethodNotFound = -32601 // also what a Substrate node answers for a denied unsafe method
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	CodeLimitExceeded  = -32005 // EIP-1474 "limit exceeded", e.g. a batch that is too long
)

// Error is the error type of [Parse]. Code says how to answer it: with
// [CodeParseError] and id null, [CodeInvalidRequest] with the call's id if
// known, or [CodeLimitExceeded].
type Error struct {
	Code   int    // CodeParseError, CodeInvalidRequest or CodeLimitExceeded
	Offset int    // byte offset in the message where the problem was found
	Reason string // short and safe to send back to the client
}

func (e *Error) Error() string {
	var kind string
	switch e.Code {
	case CodeParseError:
		kind = "parse error"
	case CodeInvalidRequest:
		kind = "invalid request"
	case CodeLimitExceeded:
		kind = "limit exceeded"
	default:
		kind = "error " + strconv.Itoa(e.Code)
	}
	return "jsonrpc: " + kind + " at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Reasons that tests and callers may compare against.
const (
	reasonTooDeep = "nesting too deep"
)

func syntaxError(off int, reason string) *Error {
	return &Error{Code: CodeParseError, Offset: off, Reason: reason}
}

func invalidRequest(off int, reason string) *Error {
	return &Error{Code: CodeInvalidRequest, Offset: off, Reason: reason}
}
