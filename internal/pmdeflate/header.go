package pmdeflate

import (
	"errors"
	"fmt"
	"strings"
)

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []param
}

// param is one extension parameter; a quoted value is unescaped.
type param struct {
	name     string
	value    string
	hasValue bool
}

// errSyntax reports a header that is not an RFC 6455 section 9.1
// extension list.
var errSyntax = errors.New("pmdeflate: malformed Sec-WebSocket-Extensions")

// parseExtensions parses the values of Sec-WebSocket-Extensions header
// fields (RFC 6455 section 9.1; several fields are one list), in order:
//
//	extension-list = 1#extension
//	extension      = token *( OWS ";" OWS extension-param )
//	extension-param = token [ OWS "=" OWS (token / quoted-string) ]
//
// Empty list elements are skipped, as RFC 9110's #rule allows. A value
// that breaks the grammar fails the whole header: where its elements
// begin and end cannot be trusted.
func parseExtensions(values []string) ([]extension, error) {
	var exts []extension
	for _, v := range values {
		p := &scanner{s: v}
		for {
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() == ',' {
				p.i++
				continue
			}
			e, err := p.extension()
			if err != nil {
				return nil, err
			}
			exts = append(exts, e)
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() != ',' {
				return nil, p.fail("',' or ';'")
			}
			p.i++
		}
	}
	return exts, nil
}

type scanner struct {
	s string
	i int
}

func (p *scanner) done() bool { return p.i >= len(p.s) }
func (p *scanner) peek() byte { return p.s[p.i] }

func (p *scanner) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *scanner) fail(want string) error {
	if p.done() {
		return fmt.Errorf("%w: want %s at the end", errSyntax, want)
	}
	return fmt.Errorf("%w: want %s at byte %d (%q)", errSyntax, want, p.i, p.s[p.i])
}

func (p *scanner) extension() (extension, error) {
	name := p.token()
	if name == "" {
		return extension{}, p.fail("an extension name")
	}
	e := extension{name: name}
	for {
		p.skipSpace()
		if p.done() || p.peek() != ';' {
			return e, nil
		}
		p.i++
		p.skipSpace()
		pr := param{name: p.token()}
		if pr.name == "" {
			return extension{}, p.fail("a parameter name")
		}
		p.skipSpace()
		if !p.done() && p.peek() == '=' {
			p.i++
			p.skipSpace()
			v, err := p.value()
			if err != nil {
				return extension{}, err
			}
			pr.value, pr.hasValue = v, true
		}
		e.params = append(e.params, pr)
	}
}

// value reads a token or a quoted-string, which RFC 6455 allows for a
// parameter's value (unescaped, it must then be a token, which the caller
// checks by the parameter's own rules).
func (p *scanner) value() (string, error) {
	if p.done() || p.peek() != '"' {
		v := p.token()
		if v == "" {
			return "", p.fail("a parameter value")
		}
		return v, nil
	}
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		p.i++
		switch {
		case c == '"':
			return b.String(), nil
		case c == '\\':
			if p.done() || !isQuotedChar(p.peek()) {
				return "", p.fail("an escaped character")
			}
			b.WriteByte(p.peek())
			p.i++
		case isQuotedChar(c):
			b.WriteByte(c)
		default:
			p.i--
			return "", p.fail("a quoted-string character")
		}
	}
	return "", p.fail(`'"'`)
}

// token reads an RFC 9110 token, returning "" if none starts here.
func (p *scanner) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isQuotedChar reports whether c may appear in a quoted-string (qdtext or
// an escaped quoted-pair): tab, space and visible ASCII; obs-text (bytes
// from 0x80) is refused, as no value here may hold it.
func isQuotedChar(c byte) bool {
	return c == '\t' || (c >= 0x20 && c < 0x7f)
}
