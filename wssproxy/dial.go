package wssproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// dialFailure says why the node could not be dialed: status, reason and
// msg are for the client (msg names no internal address), cause for logs.
type dialFailure struct {
	status int
	reason string
	msg    string
	cause  error
}

// dialPool dials the pool's nodes in order of preference until one
// answers, and assigns it to pc. A node that fails is marked unhealthy;
// one at Options.MaxConnsPerNode is skipped, undialed.
func (p *Proxy) dialPool(r *http.Request, pc *proxyConn) (*socket, string, *dialFailure) {
	var fail *dialFailure
	full := false
	warm := p.warmFits(r)
	for _, b := range p.candidates() {
		if r.Context().Err() != nil {
			break
		}
		if warm {
			if s := p.warm.take(b); s != nil {
				pc.b, pc.warm = b, true
				return s, "", nil
			}
		}
		if !b.reserve(p.opts.MaxConnsPerNode) {
			full = true
			continue
		}
		node, sub, f := p.dialNode(r, b)
		if f == nil {
			pc.b = b
			return node, sub, nil
		}
		b.conns.Add(-1)
		fail = f
		if r.Context().Err() != nil { // the client left: nothing learned of the node
			break
		}
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "wssproxy: node dial failed",
			slog.String("client", pc.key), slog.String("upstream", b.host),
			slog.String("reason", f.msg), slog.String("error", f.cause.Error()))
		p.recordHealth(b, fmt.Errorf("dial failed: %s", f.msg))
	}
	switch {
	case fail == nil && full:
		fail = &dialFailure{http.StatusServiceUnavailable, RefusalConnsNode,
			"every node is at the gateway's connection limit for it; retry later", nil}
	case fail == nil:
		fail = &dialFailure{http.StatusBadGateway, RefusalNodeDown, "client went away", r.Context().Err()}
	}
	return nil, "", fail
}

// dialNode opens node b's WebSocket for client request r, and returns its
// socket and subprotocol.
func (p *Proxy) dialNode(r *http.Request, b *backend) (*socket, string, *dialFailure) {
	start := time.Now()
	ctx := r.Context()
	s, sub, err := p.nodes.upgrade(ctx, b, r.URL, p.nodeHeaderLines(r), subprotocols(r), start.Add(p.opts.HandshakeTimeout))
	p.metrics.NodeDial(b.host, time.Since(start), err)
	if err == nil {
		p.log.LogAttrs(ctx, slog.LevelDebug, "wssproxy: node dialed",
			slog.String("upstream", b.host), slog.Duration("latency", time.Since(start)))
		return s, sub, nil
	}
	var refused *nodeRefusal
	switch cause := dialCause(err); {
	case ctx.Err() != nil:
		return nil, "", &dialFailure{http.StatusBadGateway, RefusalNodeDown, "client went away", err}
	case errors.As(err, &refused):
		return nil, "", &dialFailure{http.StatusBadGateway, RefusalNodeRefused, statusCause(refused.code, refused.status), err}
	case isTimeout(err):
		msg := "node did not complete the WebSocket handshake in time"
		if cause != "timed out" {
			msg += " (" + cause + ")"
		}
		return nil, "", &dialFailure{http.StatusGatewayTimeout, RefusalNodeTimeout, msg, err}
	default:
		return nil, "", &dialFailure{http.StatusBadGateway, RefusalNodeDown,
			"node unavailable: " + cause, err}
	}
}

// nodeHeaderLines returns the header lines of client request r's upgrade
// request to the node: the forwarded headers, the client's User-Agent,
// its Origin with ForwardOrigin, and Options.UpstreamHeader.
func (p *Proxy) nodeHeaderLines(r *http.Request) []byte {
	f := p.forwardedFor(r)
	b := make([]byte, 0, 256+len(p.upstreamLines))
	if f.client != "" {
		b = appendHeader(b, "X-Forwarded-For", f.client)
		b = appendHeader(b, "X-Real-IP", f.client)
	}
	b = appendHeader(b, "X-Forwarded-Proto", f.proto)
	b = appendHeader(b, "X-Forwarded-Host", f.host)
	ua := p.upstreamUA
	if v := r.Header["User-Agent"]; len(v) > 0 && v[0] != "" {
		ua = v[0]
	}
	if ua != "" {
		b = appendHeader(b, "User-Agent", ua)
	}
	origin := p.upstreamOrigin
	if v := r.Header["Origin"]; len(v) > 0 && v[0] != "" && p.opts.ForwardOrigin {
		origin = v[0]
	}
	if origin != "" {
		b = appendHeader(b, "Origin", origin)
	}
	return append(b, p.upstreamLines...)
}

// nodeRequestURI joins the client's path and query onto the upstream
// URL, as httputil.NewSingleHostReverseProxy does, and returns the
// request-URI of the node's upgrade request.
func nodeRequestURI(base, client *url.URL) string {
	u := *base
	if rp := client.EscapedPath(); rp != "" && rp != "/" {
		u.Path, u.RawPath = joinURLPath(base, client)
	}
	switch {
	case u.RawQuery == "":
		u.RawQuery = client.RawQuery
	case client.RawQuery != "":
		u.RawQuery += "&" + client.RawQuery
	}
	return u.RequestURI()
}

func joinURLPath(a, b *url.URL) (string, string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	return singleJoiningSlash(a.Path, b.Path), singleJoiningSlash(apath, bpath)
}

func singleJoiningSlash(a, b string) string {
	as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case as && bs:
		return a + b[1:]
	case !as && !bs:
		return a + "/" + b
	}
	return a + b
}

// subprotocols lists the subprotocols the client asked for, in order.
func subprotocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header["Sec-Websocket-Protocol"] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
