package wsframe

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// StatusCode is a close frame's status code (RFC 6455 section 7.4).
type StatusCode int

// Status codes the relay sends or checks.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	StatusNoStatusRcvd    StatusCode = 1005 // never on the wire: no code
	StatusAbnormal        StatusCode = 1006 // never on the wire
	StatusInvalidPayload  StatusCode = 1007
	StatusPolicyViolation StatusCode = 1008
	StatusMessageTooBig   StatusCode = 1009
	StatusInternalError   StatusCode = 1011
	StatusServiceRestart  StatusCode = 1012
	StatusTLSHandshake    StatusCode = 1015 // never on the wire
)

// ValidCode reports whether c may appear in a close frame: 1000-1003,
// 1007-1014, and the registered and private ranges 3000-4999.
func ValidCode(c StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// CloseError is a peer's close frame, as an error.
type CloseError struct {
	Code   StatusCode // StatusNoStatusRcvd for an empty close frame
	Reason string
}

func (e CloseError) Error() string {
	return fmt.Sprintf("closed with status %d: %q", int(e.Code), e.Reason)
}

// ParseClose parses a close frame's unmasked payload: empty (no status,
// reported as StatusNoStatusRcvd), or a valid code and a UTF-8 reason.
func ParseClose(p []byte) (CloseError, error) {
	switch {
	case len(p) == 0:
		return CloseError{Code: StatusNoStatusRcvd}, nil
	case len(p) == 1:
		return CloseError{}, ProtocolError("close payload of one byte")
	case len(p) > MaxControlPayload:
		return CloseError{}, ProtocolError("close payload over 125 bytes")
	}
	ce := CloseError{Code: StatusCode(binary.BigEndian.Uint16(p))}
	if !ValidCode(ce.Code) {
		return CloseError{}, ProtocolError(fmt.Sprintf("invalid close code %d", int(ce.Code)))
	}
	if !utf8.Valid(p[2:]) {
		return CloseError{}, ErrCloseReasonUTF8
	}
	ce.Reason = string(p[2:])
	return ce, nil
}

// ErrCloseReasonUTF8 is a close reason that is not UTF-8: status 1007.
var ErrCloseReasonUTF8 = fmt.Errorf("wsframe: close reason is not valid UTF-8")

// MaxReason is the longest close reason that fits a control frame.
const MaxReason = MaxControlPayload - 2

// TruncateReason fits reason into a close frame, without splitting a
// UTF-8 sequence.
func TruncateReason(s string) string {
	if len(s) <= MaxReason {
		return s
	}
	s = s[:MaxReason]
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				s = s[:i] // do not split a UTF-8 sequence
			}
			break
		}
	}
	return s
}

// AppendClose appends a whole close frame with code and reason (truncated
// to fit) to b, masked with key if masked. A code of StatusNoStatusRcvd
// makes an empty close frame.
func AppendClose(b []byte, code StatusCode, reason string, masked bool, key [4]byte) []byte {
	var p [MaxControlPayload]byte
	n := 0
	if code != StatusNoStatusRcvd {
		binary.BigEndian.PutUint16(p[:], uint16(code))
		n = 2 + copy(p[2:], TruncateReason(reason))
	}
	return AppendControl(b, OpClose, p[:n], masked, key)
}

// AppendControl appends a whole control frame with payload p (at most 125
// bytes) to b, masked with key if masked.
func AppendControl(b []byte, op Opcode, p []byte, masked bool, key [4]byte) []byte {
	b = AppendHeader(b, Header{Fin: true, Opcode: op, Masked: masked, Key: key, Length: int64(len(p))})
	start := len(b)
	b = append(b, p...)
	if masked {
		Mask(key, 0, b[start:])
	}
	return b
}
