package ratelimit

import (
	"net/netip"
	"strings"
)

// This file parses forwarding headers into hop lists, left to right. A
// hop that is not an address is the zero netip.Addr, which ends a
// right-to-left walk of trust. The parsers never fail: anything they
// cannot read becomes such a hop.

// maxHops is how many hops, counted from the right, a header walk can
// see. Real proxy chains are a few hops long; the bound keeps a huge
// header from costing memory.
const maxHops = 64

// hops keeps the right-most maxHops hops appended to it, in a ring.
type hops struct {
	ring [maxHops]netip.Addr
	n    int // hops appended in all
}

func (h *hops) add(a netip.Addr) {
	h.ring[h.n%maxHops] = a
	h.n++
}

// len returns how many hops are kept.
func (h *hops) len() int { return min(h.n, maxHops) }

// fromRight returns the i-th kept hop from the right, i < h.len().
func (h *hops) fromRight(i int) netip.Addr { return h.ring[(h.n-1-i)%maxHops] }

// parseXFF parses X-Forwarded-For style lines: comma-separated
// addresses, each optionally with a port ("1.2.3.4:5678",
// "[2001:db8::1]:80"). Empty list elements are skipped, as RFC 9110
// list syntax allows.
func parseXFF(h *hops, lines []string) {
	for _, line := range lines {
		for elem := range strings.SplitSeq(line, ",") {
			elem = trimOWS(elem)
			if elem == "" {
				continue
			}
			a, _ := parseNode(elem)
			h.add(a)
		}
	}
}

// parseForwarded parses RFC 7239 Forwarded lines into one hop per
// forwarded-element: the address in its for= parameter. An element
// with no for=, more than one, a non-address node ("unknown",
// "_hidden") or a syntax error is an invalid hop. Parameter names are
// case-insensitive. Each line is parsed on its own, so an unterminated
// quoted-string spoils at most the rest of its line.
func parseForwarded(h *hops, lines []string) {
	for _, line := range lines {
		for i := 0; i < len(line); {
			var hop netip.Addr
			var empty bool
			hop, empty, i = parseElement(line, i)
			if !empty {
				h.add(hop)
			}
		}
	}
}

// parseElement parses the forwarded-element that starts at s[i] and
// returns its for= address, whether it was empty, and the index just
// past its terminating comma.
func parseElement(s string, i int) (hop netip.Addr, empty bool, next int) {
	var forValue string
	nFor, nPairs, bad := 0, 0, false
	for {
		i = skipOWS(s, i)
		if i >= len(s) || s[i] == ',' {
			break
		}
		if s[i] == ';' { // empty pair
			i++
			continue
		}
		start := i
		for i < len(s) && isTchar(s[i]) {
			i++
		}
		name := s[start:i]
		i = skipOWS(s, i)
		if name == "" || i >= len(s) || s[i] != '=' {
			bad = true
			break
		}
		i = skipOWS(s, i+1)
		value, n, ok := parseValue(s, i)
		i = n
		if !ok {
			bad = true
			break
		}
		nPairs++
		if strings.EqualFold(name, "for") {
			nFor++
			forValue = value
		}
		i = skipOWS(s, i)
		if i < len(s) && s[i] == ';' {
			i++
			continue
		}
		if i < len(s) && s[i] != ',' {
			bad = true
		}
		break
	}
	if bad {
		i = skipToComma(s, i)
	}
	if i < len(s) { // s[i] == ','
		i++
	}
	if !bad && nPairs == 0 {
		return netip.Addr{}, true, i
	}
	if bad || nFor != 1 {
		return netip.Addr{}, false, i
	}
	a, _ := parseNode(forValue)
	return a, false, i
}

// parseValue parses a token or quoted-string at s[i]. A token runs to
// the next ';', ',', quote or white space (more leniently than RFC 7239,
// so that unquoted IPv6 nodes are read too).
func parseValue(s string, i int) (value string, next int, ok bool) {
	if i < len(s) && s[i] == '"' {
		if end := strings.IndexAny(s[i+1:], `"\`); end >= 0 && s[i+1+end] == '"' {
			return s[i+1 : i+1+end], i + end + 2, true // no escapes: no copy
		}
		var b strings.Builder
		for i++; i < len(s); i++ {
			switch c := s[i]; c {
			case '"':
				return b.String(), i + 1, true
			case '\\':
				if i+1 >= len(s) {
					return "", len(s), false
				}
				i++
				b.WriteByte(s[i])
			default:
				b.WriteByte(c)
			}
		}
		return "", len(s), false // unterminated
	}
	start := i
	for i < len(s) && !strings.ContainsRune(";,\" \t", rune(s[i])) {
		i++
	}
	return s[start:i], i, i > start
}

// skipToComma returns the index of the next ',' at or after s[i] that
// is outside a quoted-string, or len(s).
func skipToComma(s string, i int) int {
	quoted := false
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return i
			}
		}
	}
	return len(s)
}

// parseNode parses a node: "1.2.3.4", "1.2.3.4:80", "[2001:db8::1]",
// "[2001:db8::1]:80" or a bare "2001:db8::1". A port is digits or an
// RFC 7239 obfuscated port ("_x"). The address is unmapped and its zone
// dropped. Identifiers such as "unknown" or "_hidden" are not nodes.
func parseNode(s string) (netip.Addr, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		host = s[:i]
		if !validPort(s[i+1:]) {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// validPort reports whether p is 1 to 5 digits or an RFC 7239 obfport.
func validPort(p string) bool {
	if p == "" {
		return false
	}
	if p[0] == '_' {
		if len(p) == 1 {
			return false
		}
		for i := 1; i < len(p); i++ {
			c := p[i]
			if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
		return true
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isTchar reports whether c may appear in an RFC 9110 token.
func isTchar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}
