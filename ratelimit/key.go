package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// A KeyFunc maps a request to the key it is limited under, such as the
// client's address. It is called once per request and must be safe for
// concurrent use.
type KeyFunc func(r *http.Request) string

// UnknownKey is the key of every request whose client address cannot be
// determined: its RemoteAddr is neither "ip:port" nor "ip" (a Unix socket
// listener, for example, leaves it "@" or empty). All such requests share
// this one key, so they are limited together rather than not at all.
// A real key is always an address or prefix, so it never equals UnknownKey.
const UnknownKey = "unknown"

const (
	defaultIPv4Prefix = 32
	defaultIPv6Prefix = 64
	defaultHeader     = "X-Forwarded-For"
)

var (
	_ KeyFunc = RemoteAddr
	_ KeyFunc = (&Keyer{}).Key
)

// defaultKeyer trusts no proxy; RemoteAddr uses it.
var defaultKeyer Keyer

// RemoteAddr keys r on the peer address in r.RemoteAddr, never on a
// header: an IPv4 address is its own key ("203.0.113.7") and an IPv6
// address is grouped by its /64 ("2001:db8:1:2::/64"). IPv4-mapped IPv6
// addresses count as IPv4 and zones are dropped. If RemoteAddr cannot be
// parsed, the key is [UnknownKey]. It is the zero [Keyer]'s Key.
func RemoteAddr(r *http.Request) string {
	return defaultKeyer.Key(r)
}

// ForwardedFor returns a KeyFunc like [RemoteAddr] that believes the
// X-Forwarded-For header of peers inside the trusted prefixes, as
// [Keyer.ClientAddr] describes. With no prefixes it is RemoteAddr.
// The slice is copied.
func ForwardedFor(trusted ...netip.Prefix) KeyFunc {
	k := &Keyer{TrustedProxies: slices.Clone(trusted)}
	return k.Key
}

// A Keyer derives limit keys from client addresses, optionally believing
// a forwarding header set by trusted reverse proxies. Its Key method is a
// [KeyFunc].
//
// The zero Keyer trusts nobody and behaves like [RemoteAddr]. A Keyer
// must not be modified while in use.
type Keyer struct {
	// IPv4Prefix is how many leading bits of an IPv4 client address form
	// its key; 24 limits a whole /24 together. If zero, 32: every address
	// is its own key.
	IPv4Prefix int

	// IPv6Prefix is how many leading bits of an IPv6 client address form
	// its key. If zero, 64: a client usually holds a whole /64 and could
	// otherwise get a fresh key for every request.
	IPv6Prefix int

	// TrustedProxies are the peers whose Header is believed. If empty,
	// no header is ever read and the key is the peer's own address.
	//
	// Danger: list only proxies you run that append to (or overwrite)
	// Header. A trusted peer that passes a client's header through
	// unchanged lets that client choose its own key.
	TrustedProxies []netip.Prefix

	// Header names the forwarding header that trusted proxies set. If
	// empty, "X-Forwarded-For". "Forwarded" (any case) selects RFC 7239
	// parsing of its for= parameters; any other name (such as
	// "X-Real-IP") is read as a comma-separated list of addresses, like
	// X-Forwarded-For.
	//
	// Only this one header is read, never several: a proxy that appends
	// to X-Forwarded-For passes a client's Forwarded header through
	// untouched, so reading both would let the client choose its key.
	Header string
}

// Validate reports whether k's fields are in range: IPv4Prefix in
// [0, 32], IPv6Prefix in [0, 128] and every TrustedProxies entry valid.
func (k *Keyer) Validate() error {
	var errs []error
	if k.IPv4Prefix < 0 || k.IPv4Prefix > 32 {
		errs = append(errs, fmt.Errorf("ratelimit: Keyer.IPv4Prefix %d is not in [0, 32]", k.IPv4Prefix))
	}
	if k.IPv6Prefix < 0 || k.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("ratelimit: Keyer.IPv6Prefix %d is not in [0, 128]", k.IPv6Prefix))
	}
	for i, p := range k.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("ratelimit: Keyer.TrustedProxies[%d] is not a valid prefix", i))
		}
	}
	return errors.Join(errs...)
}

// Key returns the canonical key of r's client address (see
// [Keyer.ClientAddr]): the masked address, as "203.0.113.7" when the
// prefix covers the whole address, or as a prefix such as
// "2001:db8:1:2::/64". It returns [UnknownKey] if r.RemoteAddr cannot be
// parsed. Key panics if IPv4Prefix or IPv6Prefix is out of range; call
// [Keyer.Validate] when configuring.
func (k *Keyer) Key(r *http.Request) string {
	a, err := k.ClientAddr(r)
	if err != nil {
		return UnknownKey
	}
	return k.keyOf(a)
}

func (k *Keyer) keyOf(a netip.Addr) string {
	bits := k.IPv4Prefix
	if bits == 0 {
		bits = defaultIPv4Prefix
	}
	if a.Is6() {
		bits = k.IPv6Prefix
		if bits == 0 {
			bits = defaultIPv6Prefix
		}
	}
	if bits == a.BitLen() {
		return a.String()
	}
	p, err := a.Prefix(bits)
	if err != nil {
		panic(k.Validate())
	}
	return p.String()
}

// ClientAddr returns the address of the client that sent r.
//
// If the peer (r.RemoteAddr) is not in TrustedProxies, it is the client
// and no header is read. Otherwise Header is walked from right to left
// (across all its lines, last line first), skipping trusted hops: the
// first untrusted hop is the client. If every hop is trusted, the
// left-most is the client. A hop that is not an address (garbage, an
// RFC 7239 "unknown" or "_obfuscated" identifier, a Forwarded element
// without for=) ends the walk: the trusted hop that reported it, or the
// peer, is the client, since nothing further left can be believed.
// At most the 64 right-most hops are looked at; if all are trusted, the
// 64th counts as the left-most.
//
// The result is never zoned and never an IPv4-mapped IPv6 address. The
// error is non-nil only if r.RemoteAddr cannot be parsed.
func (k *Keyer) ClientAddr(r *http.Request) (netip.Addr, error) {
	peer, ok := parseNode(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("ratelimit: cannot parse RemoteAddr %q", r.RemoteAddr)
	}
	if !k.trusted(peer) {
		return peer, nil
	}
	name := k.Header
	if name == "" {
		name = defaultHeader
	}
	values := r.Header.Values(name)
	var h hops
	if strings.EqualFold(name, "Forwarded") {
		parseForwarded(&h, values)
	} else {
		parseXFF(&h, values)
	}
	return k.walk(peer, &h), nil
}

// walk returns the right-most untrusted hop, stopping at the first
// invalid hop; see ClientAddr.
func (k *Keyer) walk(peer netip.Addr, h *hops) netip.Addr {
	client := peer
	for i := range h.len() {
		a := h.fromRight(i)
		if !a.IsValid() {
			break
		}
		client = a
		if !k.trusted(client) {
			break
		}
	}
	return client
}

func (k *Keyer) trusted(a netip.Addr) bool {
	for _, p := range k.TrustedProxies {
		if p.Contains(a) {
			return true
		}
		if a.Is4() && p.Addr().Is4In6() && p.Contains(netip.AddrFrom16(a.As16())) {
			return true
		}
	}
	return false
}

// ParseTrusted parses a list of trusted proxies separated by commas
// and/or white space, such as "10.0.0.0/8, 127.0.0.1, ::1", for
// [Keyer.TrustedProxies]. A bare address becomes a /32 or /128; a prefix
// is masked ("10.1.2.3/8" becomes 10.0.0.0/8); IPv4-mapped IPv6 entries
// become IPv4. The error names the first bad entry. An empty list gives
// nil: trust nobody.
func ParseTrusted(list string) ([]netip.Prefix, error) {
	fields := strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	var out []netip.Prefix
	for _, f := range fields {
		p, err := parseTrustedEntry(f)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: bad trusted proxy %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseTrustedEntry(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zoned addresses are not supported")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
