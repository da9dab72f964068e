package wssproxy

import (
	"net"
	"net/http"
	"net/netip"

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

// forwardedHeaders sets X-Forwarded-For, X-Real-IP, -Proto and -Host on
// out for a request r. The node gets exactly one X-Forwarded-For entry, the
// client address the gateway resolved (the peer, or with TrustedProxies the
// first untrusted hop from the right), and X-Real-IP with the same value:
// never an entry a client wrote, since the node's own --rpc-rate-limit keys
// on the left-most entry.
func (p *Proxy) forwardedHeaders(out http.Header, r *http.Request) {
	peer := peerAddr(r)
	trusted := peer.IsValid() && p.trusted(peer)
	out.Del("Forwarded")
	k := ratelimit.Keyer{TrustedProxies: p.opts.TrustedProxies}
	if client, err := k.ClientAddr(r); err == nil && client.IsValid() {
		out.Set("X-Forwarded-For", client.String())
		out.Set("X-Real-IP", client.String())
	} else {
		out.Del("X-Forwarded-For")
		out.Del("X-Real-IP")
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if v := r.Header.Get("X-Forwarded-Proto"); trusted && (v == "http" || v == "https") {
		proto = v
	}
	out.Set("X-Forwarded-Proto", proto)
	host := r.Host
	if v := r.Header.Get("X-Forwarded-Host"); trusted && v != "" {
		host = v
	}
	out.Set("X-Forwarded-Host", host)
}
