package wssproxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/ratelimit"
)

// serveWebSocket checks the client's handshake, dials the node, and only
// then accepts the client, so a dead node costs the client an HTTP 502
// instead of a socket that dies at once.
func (p *Proxy) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if status, why := checkHandshake(r); status != 0 {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		p.refuse(w, r, status, RefusalBadHandshake, why)
		return
	}
	if !p.originAllowed(r) {
		p.refuse(w, r, http.StatusForbidden, RefusalOrigin, fmt.Sprintf("origin %q is not allowed", r.Header.Get("Origin")))
		return
	}
	key := p.opts.Key(r)
	if !p.allowRequest(w, r, key) {
		return
	}
	release := func() {}
	if cl := p.opts.ConnLimit; cl != nil {
		var err error
		release, err = cl.Acquire(key)
		if err != nil {
			status, reason, why := http.StatusTooManyRequests, RefusalConnsClient, "too many connections from this client"
			if errors.Is(err, ratelimit.ErrTooMany) {
				status, reason, why = http.StatusServiceUnavailable, RefusalConnsTotal, "gateway is at its connection limit"
			}
			w.Header().Set("Retry-After", "5")
			p.refuse(w, r, status, reason, why)
			return
		}
	}
	if p.hub != nil {
		p.serveShared(w, r, key, release)
		return
	}
	pc := p.newConn(key)
	if pc == nil {
		release()
		p.refuse(w, r, http.StatusServiceUnavailable, RefusalShuttingDown, "gateway is shutting down")
		return
	}
	spliced := false
	defer func() {
		if !spliced {
			p.unregister(pc)
			release()
		}
	}()

	node, nodeSide, fail := p.dialPool(r, pc)
	if fail != nil {
		if fail.reason == RefusalConnsNode {
			w.Header().Set("Retry-After", "5")
		}
		p.refuse(w, r, fail.status, fail.reason, fail.msg)
		return
	}
	node.SetReadLimit(p.readLimit())

	var subs []string
	if sp := node.Subprotocol(); sp != "" {
		subs = []string{sp}
	}
	hc := &hijackCapture{ResponseWriter: w}
	client, err := websocket.Accept(hc, r, &websocket.AcceptOptions{
		Subprotocols:       subs,
		InsecureSkipVerify: true, // origins were checked before dialing the node
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has already answered the client.
		node.Close(websocket.StatusGoingAway, "client handshake failed")
		return
	}
	client.SetReadLimit(p.readLimit())
	pc.cside.Store(hc.side)
	pc.link(hc.side, nodeSide)
	// The splice runs on in goroutines of its own, and ServeHTTP returns:
	// net/http then frees this goroutine's stack (deep after a TLS
	// handshake) and its buffers, which would otherwise be held for the
	// life of every connection.
	spliced = true
	go func() {
		defer release()
		defer p.unregister(pc)
		pc.run(client, node)
	}()
}

// allowRequest applies Options.RequestLimit to a handshake or HTTP
// request, answering 429 with Retry-After when it is over.
func (p *Proxy) allowRequest(w http.ResponseWriter, r *http.Request, key string) bool {
	l := p.opts.RequestLimit
	if l == nil {
		return true
	}
	ok, retry := l.Allow(key)
	if ok {
		return true
	}
	secs := int64(math.Ceil(retry.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	p.refuse(w, r, http.StatusTooManyRequests, RefusalRate, "too many requests: over the per-client rate limit")
	return false
}

func (p *Proxy) readLimit() int64 {
	if p.opts.ReadLimit < 0 {
		return -1
	}
	return p.opts.ReadLimit
}

// checkHandshake validates a client's WebSocket upgrade request (RFC 6455
// section 4.2.1) before any work is done for it. It returns 0 if valid.
func checkHandshake(r *http.Request) (status int, why string) {
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "WebSocket handshake must be a GET"
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return http.StatusBadRequest, "WebSocket handshake needs HTTP/1.1"
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// net/http would wait for it, up to 256 KiB, when the handshake is
		// hijacked: after the node was dialed, and with no timeout.
		return http.StatusBadRequest, "WebSocket handshake must not have a body"
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q; want 13", v)
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return http.StatusBadRequest, "invalid Sec-WebSocket-Key"
	}
	return 0, ""
}

// originAllowed applies Options.AllowedOrigins to a browser's Origin.
func (p *Proxy) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(p.opts.AllowedOrigins) == 0 {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, pat := range p.opts.AllowedOrigins {
		if strings.Contains(pat, "://") {
			if strings.EqualFold(pat, origin) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(strings.ToLower(pat), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// originHost strips a scheme from an AllowedOrigins entry.
func originHost(pat string) string {
	if _, rest, ok := strings.Cut(pat, "://"); ok {
		return rest
	}
	return pat
}

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
func (p *Proxy) dialPool(r *http.Request, pc *proxyConn) (*websocket.Conn, *sideConn, *dialFailure) {
	var fail *dialFailure
	full := false
	for _, b := range p.candidates() {
		if r.Context().Err() != nil {
			break
		}
		if !b.reserve(p.opts.MaxConnsPerNode) {
			full = true
			continue
		}
		node, side, f := p.dialNode(r, b)
		if f == nil {
			pc.b = b
			return node, side, nil
		}
		b.conns.Add(-1)
		fail = f
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
	return nil, nil, fail
}

// dialNode opens node b's WebSocket for client request r.
func (p *Proxy) dialNode(r *http.Request, b *backend) (*websocket.Conn, *sideConn, *dialFailure) {
	slot := &nodeSlot{}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), nodeSlotKey{}, slot), p.opts.HandshakeTimeout)
	defer cancel()
	start := time.Now()
	h := http.Header{}
	for k, v := range p.opts.UpstreamHeader {
		h[k] = append([]string(nil), v...)
	}
	p.forwardedHeaders(h, r)
	if ua := r.Header.Get("User-Agent"); ua != "" {
		h.Set("User-Agent", ua)
	}
	if o := r.Header.Get("Origin"); o != "" && p.opts.ForwardOrigin {
		h.Set("Origin", o)
	}
	node, resp, err := websocket.Dial(ctx, nodeURL(b.url, r), &websocket.DialOptions{
		HTTPClient:      p.wsDial,
		HTTPHeader:      h,
		Subprotocols:    subprotocols(r),
		CompressionMode: websocket.CompressionDisabled,
	})
	p.metrics.NodeDial(b.host, time.Since(start), err)
	if err == nil {
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "wssproxy: node dialed",
			slog.String("upstream", b.host), slog.Duration("latency", time.Since(start)))
		return node, slot.side, nil
	}
	switch cause := dialCause(err); {
	case resp != nil && resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, nil, &dialFailure{http.StatusBadGateway, RefusalNodeRefused, statusCause(resp), err}
	case ctx.Err() != nil && r.Context().Err() == nil, isTimeout(err):
		msg := "node did not complete the WebSocket handshake in time"
		if cause != "timed out" {
			msg += " (" + cause + ")"
		}
		return nil, nil, &dialFailure{http.StatusGatewayTimeout, RefusalNodeTimeout, msg, err}
	default:
		return nil, nil, &dialFailure{http.StatusBadGateway, RefusalNodeDown,
			"node unavailable: " + cause, err}
	}
}

// nodeURL joins the client's path and query onto the upstream URL, as
// httputil.NewSingleHostReverseProxy does.
func nodeURL(base *url.URL, r *http.Request) string {
	u := *base
	if rp := r.URL.EscapedPath(); rp != "" && rp != "/" {
		u.Path, u.RawPath = joinURLPath(base, r.URL)
	}
	switch {
	case u.RawQuery == "":
		u.RawQuery = r.URL.RawQuery
	case r.URL.RawQuery != "":
		u.RawQuery += "&" + r.URL.RawQuery
	}
	return u.String()
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
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
