package jsonrpc

import (
	"strconv"
	"unicode/utf8"
)

// AppendError appends a JSON-RPC 2.0 error response to dst:
//
//	{"jsonrpc":"2.0","error":{"code":code,"message":message,"data":data},"id":id}
//
// id is a raw JSON value as in [Call.ID]; nil writes null. data is omitted
// when empty. message and data are escaped, and invalid UTF-8 in them is
// written as U+FFFD.
func AppendError(dst, id []byte, code int, message, data string) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	if data != "" {
		dst = append(dst, `,"data":`...)
		dst = AppendString(dst, data)
	}
	dst = append(dst, `},"id":`...)
	if id == nil {
		return append(dst, `null}`...)
	}
	dst = append(dst, id...)
	return append(dst, '}')
}

// AppendBatch appends the JSON array of the raw JSON values elems to dst,
// e.g. the allowed elements of a batch, msg[c.Start:c.End] for each.
func AppendBatch(dst []byte, elems ...[]byte) []byte {
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string. Invalid UTF-8 bytes are
// written as U+FFFD, as encoding/json does.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c >= utf8.RuneSelf {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
