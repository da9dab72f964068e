package jsonrpc

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects Parse accepts.
// JSON-RPC envelopes and Substrate params nest a handful of levels; the bound
// keeps a message of a million '[' from costing a million stack frames.
const MaxDepth = 512

// IsWhitespace reports whether c is JSON whitespace (RFC 8259 section 2).
func IsWhitespace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// TrimSpace returns b without leading and trailing JSON whitespace.
func TrimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && IsWhitespace(b[i]) {
		i++
	}
	for j > i && IsWhitespace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && IsWhitespace(b[i]) {
		i++
	}
	return i
}

// scanner validates JSON values in msg. Methods take the index of the first
// byte of a value (no leading whitespace) and return the index just past it.
type scanner struct {
	msg   []byte
	depth int
}

func (s *scanner) value(i int) (int, error) {
	if i >= len(s.msg) {
		return i, syntaxError(i, "unexpected end of input")
	}
	switch c := s.msg[i]; {
	case c == '"':
		j, _, err := s.str(i)
		return j, err
	case c == '{':
		return s.object(i)
	case c == '[':
		return s.array(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number(i)
	}
	return i, syntaxError(i, "invalid character")
}

func (s *scanner) push(i int) error {
	s.depth++
	if s.depth > MaxDepth {
		return syntaxError(i, reasonTooDeep)
	}
	return nil
}

// object validates an object without looking at its members.
func (s *scanner) object(i int) (int, error) {
	if err := s.push(i); err != nil {
		return i, err
	}
	j := skipSpace(s.msg, i+1)
	if j < len(s.msg) && s.msg[j] == '}' {
		s.depth--
		return j + 1, nil
	}
	for {
		k, err := s.key(j)
		if err != nil {
			return k, err
		}
		if j, err = s.value(k); err != nil {
			return j, err
		}
		var done bool
		if j, done, err = s.next(j, '}'); err != nil || done {
			s.depth--
			return j, err
		}
	}
}

// key validates `"name" :` plus the whitespace after the colon and returns
// the index of the member's value.
func (s *scanner) key(j int) (int, error) {
	if j >= len(s.msg) || s.msg[j] != '"' {
		return j, syntaxError(j, "expected object key")
	}
	k, _, err := s.str(j)
	if err != nil {
		return k, err
	}
	return s.colon(k)
}

func (s *scanner) colon(k int) (int, error) {
	k = skipSpace(s.msg, k)
	if k >= len(s.msg) || s.msg[k] != ':' {
		return k, syntaxError(k, "expected ':'")
	}
	return skipSpace(s.msg, k+1), nil
}

// next consumes the separator after a member or element: ',' (and the space
// after it) or the closing byte, reported as done.
func (s *scanner) next(j int, closing byte) (int, bool, error) {
	j = skipSpace(s.msg, j)
	if j >= len(s.msg) {
		return j, false, syntaxError(j, "unexpected end of input")
	}
	switch s.msg[j] {
	case ',':
		return skipSpace(s.msg, j+1), false, nil
	case closing:
		return j + 1, true, nil
	}
	return j, false, syntaxError(j, "expected ',' or '"+string(closing)+"'")
}

func (s *scanner) array(i int) (int, error) {
	if err := s.push(i); err != nil {
		return i, err
	}
	j := skipSpace(s.msg, i+1)
	if j < len(s.msg) && s.msg[j] == ']' {
		s.depth--
		return j + 1, nil
	}
	for {
		var err error
		if j, err = s.value(j); err != nil {
			return j, err
		}
		var done bool
		if j, done, err = s.next(j, ']'); err != nil || done {
			s.depth--
			return j, err
		}
	}
}

func (s *scanner) literal(i int, lit string) (int, error) {
	if len(s.msg)-i < len(lit) || string(s.msg[i:i+len(lit)]) != lit {
		return i, syntaxError(i, "invalid literal")
	}
	return i + len(lit), nil
}

func (s *scanner) number(i int) (int, error) {
	b, j := s.msg, i
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		j = digits(b, j+1)
	default:
		return j, syntaxError(j, "invalid number")
	}
	if j < len(b) && b[j] == '.' {
		k := digits(b, j+1)
		if k == j+1 {
			return k, syntaxError(k, "invalid number")
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := digits(b, j)
		if k == j {
			return k, syntaxError(k, "invalid number")
		}
		j = k
	}
	return j, nil
}

func digits(b []byte, j int) int {
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	return j
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes in x needs a closer look inside
// a string: no control byte, '"', '\\' or non-ASCII byte.
func plain8(x uint64) bool {
	ctl := (x - lsb*0x20) & ^x
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return (ctl|(q-lsb)&^q|(bs-lsb)&^bs|x)&msb == 0
}

// str validates the string starting at the quote at s.msg[i]. It returns the
// index past the closing quote and whether the string contains escapes.
func (s *scanner) str(i int) (int, bool, error) {
	b, j, escaped := s.msg, i+1, false
	for {
		for j+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			return j, escaped, syntaxError(i, "unterminated string")
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			n := escapeLen(b[j:])
			if n == 0 {
				return j, escaped, syntaxError(j, "invalid escape")
			}
			escaped = true
			j += n
		case c < 0x20:
			return j, escaped, syntaxError(j, "control character in string")
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && n == 1 {
				return j, escaped, syntaxError(j, "invalid UTF-8")
			}
			j += n
		}
	}
}

// escapeLen returns the length of the escape sequence at the start of b, or 0
// if it is not a valid JSON escape.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) >= 6 && hex4(b[2:6]) >= 0 {
			return 6
		}
	}
	return 0
}

// hex4 decodes 4 hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape appends the decoded contents of the valid, escaped JSON string
// body raw (quotes removed) to dst. Like serde_json, it refuses lone UTF-16
// surrogates (ok false), where encoding/json would substitute U+FFFD.
func unescape(dst, raw []byte) (_ []byte, ok bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch c = raw[i+1]; c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if r >= 0xD800 && r < 0xE000 {
				if r >= 0xDC00 || len(raw)-i < 6 || raw[i] != '\\' || raw[i+1] != 'u' {
					return dst, false
				}
				lo := hex4(raw[i+2:])
				if lo < 0xDC00 || lo >= 0xE000 {
					return dst, false
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		dst = append(dst, c)
		i += 2
	}
	return dst, true
}
