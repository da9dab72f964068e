package wssproxy

import (
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"

	"github.com/wssgate/wssgate/ratelimit"
)

// peerAddr is the address of the TCP peer of r, or the zero Addr.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// trusted reports whether a is one of the configured trusted proxies.
func (p *Proxy) trusted(a netip.Addr) bool {
	for _, pfx := range p.opts.TrustedProxies {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// forwarded is what the gateway tells the node about a client request:
// the X-Forwarded-For and X-Real-IP value ("" for none), X-Forwarded-Proto
// and X-Forwarded-Host.
type forwarded struct{ client, proto, host string }

// forwardedFor resolves r's forwarded values. The node gets exactly one
// X-Forwarded-For entry, the client address the gateway resolved (the
// peer, or with TrustedProxies the first untrusted hop from the right),
// and X-Real-IP with the same value: never an entry a client wrote, since
// the node's own --rpc-rate-limit keys on the left-most entry.
func (p *Proxy) forwardedFor(r *http.Request) forwarded {
	var f forwarded
	k := ratelimit.Keyer{TrustedProxies: p.opts.TrustedProxies}
	if client, err := k.ClientAddr(r); err == nil && client.IsValid() {
		f.client = client.String()
	}
	trusted := false
	if len(p.opts.TrustedProxies) > 0 {
		peer := peerAddr(r)
		trusted = peer.IsValid() && p.trusted(peer)
	}
	f.proto = "http"
	if r.TLS != nil {
		f.proto = "https"
	}
	if v := r.Header.Get("X-Forwarded-Proto"); trusted && (v == "http" || v == "https") {
		f.proto = v
	}
	f.host = r.Host
	if v := r.Header.Get("X-Forwarded-Host"); trusted && v != "" {
		f.host = v
	}
	return f
}

// forwardedHeaders sets X-Forwarded-For, X-Real-IP, -Proto and -Host on
// out for a request r, as [Proxy.forwardedFor] resolves them, and drops
// Forwarded.
func (p *Proxy) forwardedHeaders(out http.Header, r *http.Request) {
	f := p.forwardedFor(r)
	out.Del("Forwarded")
	if f.client != "" {
		out.Set("X-Forwarded-For", f.client)
		out.Set("X-Real-IP", f.client)
	} else {
		out.Del("X-Forwarded-For")
		out.Del("X-Real-IP")
	}
	out.Set("X-Forwarded-Proto", f.proto)
	out.Set("X-Forwarded-Host", f.host)
}

// appendHeader appends the header line "name: value\r\n" to b, with any
// CR, LF or NUL in value replaced by a space, as http.Header.Write does.
func appendHeader(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// nodeOwnHeaders are the headers of a node upgrade request that the
// gateway writes itself; Options.UpstreamHeader cannot set them.
var nodeOwnHeaders = []string{"Host", "User-Agent", "Origin", "Content-Length", "Transfer-Encoding", "Trailer",
	"Connection", "Upgrade", "Sec-Websocket-Version", "Sec-Websocket-Key", "Sec-Websocket-Protocol",
	"Sec-Websocket-Extensions", "Forwarded", "X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host"}

// renderUpstreamHeader writes Options.UpstreamHeader as the header lines
// of every node upgrade request, once, leaving out the headers the gateway
// writes itself; its User-Agent and Origin are returned as defaults.
func renderUpstreamHeader(h http.Header) (lines []byte, ua, origin string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch ck := textproto.CanonicalMIMEHeaderKey(k); {
		case ck == "User-Agent" && len(h[k]) > 0:
			ua = h[k][0]
		case ck == "Origin" && len(h[k]) > 0:
			origin = h[k][0]
		case slices.Contains(nodeOwnHeaders, ck):
		default:
			for _, v := range h[k] {
				lines = appendHeader(lines, k, v)
			}
		}
	}
	return lines, ua, origin
}

// headerValue is h.Get(key) for a key already in canonical form
// ("Sec-Websocket-Key"), which Get would canonicalize anew, allocating.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
