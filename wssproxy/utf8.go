package wssproxy

import (
	"unicode/utf8"

	"github.com/coder/websocket"
)

// errBadUTF8 closes a client that sent a text message that is not UTF-8
// (RFC 6455 section 8.1): 1007, invalid frame payload data.
var errBadUTF8 = &policyClose{websocket.StatusInvalidFramePayloadData, "text message is not valid UTF-8"}

// utf8Stream validates UTF-8 across the chunks of a streamed message,
// carrying a rune split between chunks.
type utf8Stream struct {
	carry [utf8.UTFMax]byte
	n     int
}

// write reports whether p, following what came before, is still valid.
func (u *utf8Stream) write(p []byte) bool {
	for u.n > 0 && len(p) > 0 && !utf8.FullRune(u.carry[:u.n]) {
		u.carry[u.n] = p[0]
		u.n++
		p = p[1:]
	}
	if u.n > 0 {
		if !utf8.FullRune(u.carry[:u.n]) {
			return true // p ran out inside the rune
		}
		if r, size := utf8.DecodeRune(u.carry[:u.n]); r == utf8.RuneError && size <= 1 || size != u.n {
			return false
		}
		u.n = 0
	}
	tail := incompleteTail(p)
	if !utf8.Valid(p[:len(p)-tail]) {
		return false
	}
	u.n = copy(u.carry[:], p[len(p)-tail:])
	return true
}

// end reports whether the message did not stop inside a rune.
func (u *utf8Stream) end() bool { return u.n == 0 }

// incompleteTail is the length of a rune cut off at the end of p.
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return 0
			}
			return len(p) - i
		}
	}
	return 0
}
