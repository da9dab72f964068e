package wssproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
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
	for _, b := range p.candidates() {
		if r.Context().Err() != nil {
			break
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
	resp, err := p.upgradeNode(ctx, nodeURL(b.url, r), h, subprotocols(r))
	p.metrics.NodeDial(b.host, time.Since(start), err)
	if err == nil {
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "wssproxy: node dialed",
			slog.String("upstream", b.host), slog.Duration("latency", time.Since(start)))
		return &socket{conn: slot.conn, side: sideNode, early: slot.early}, resp.Header.Get("Sec-WebSocket-Protocol"), nil
	}
	if slot.conn != nil { // a 101 that breaks RFC 6455
		slot.conn.Close()
	}
	switch cause := dialCause(err); {
	case resp != nil && resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, "", &dialFailure{http.StatusBadGateway, RefusalNodeRefused, statusCause(resp), err}
	case ctx.Err() != nil && r.Context().Err() == nil, isTimeout(err):
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

// upgradeNode performs the opening handshake of RFC 6455 section 4.1 with
// the node at rawURL, offering subprotocols subs, on a connection of the
// proxy's upgradeTransport, which leaves the connection in ctx's nodeSlot.
// A response other than 101 is returned with an error; h becomes the
// request's header.
func (p *Proxy) upgradeNode(ctx context.Context, rawURL string, h http.Header, subs []string) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req.Header = h
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-WebSocket-Version", "13")
	h.Set("Sec-WebSocket-Key", key)
	if len(subs) > 0 {
		h.Set("Sec-WebSocket-Protocol", strings.Join(subs, ","))
	}
	resp, err := p.wsDial.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return resp, fmt.Errorf("wssproxy: node answered the upgrade with %s", resp.Status)
	}
	sub := resp.Header.Get("Sec-WebSocket-Protocol")
	switch {
	case !hasToken(resp.Header, "Connection", "upgrade"), !hasToken(resp.Header, "Upgrade", "websocket"):
		err = errors.New("wssproxy: node's 101 lacks Connection: Upgrade or Upgrade: websocket")
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key):
		err = errors.New("wssproxy: node's 101 has a wrong Sec-WebSocket-Accept")
	case sub != "" && !slices.Contains(subs, sub):
		err = fmt.Errorf("wssproxy: node chose subprotocol %q, which was not offered", sub)
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		err = errors.New("wssproxy: node chose an extension, which was not offered")
	}
	return resp, err
}

// acceptKey is the Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// nodeSlot receives, through the dial's context, the node's connection
// and any bytes the node sent right after its 101, as upgradeTransport
// reads them.
type nodeSlot struct {
	conn  net.Conn
	early []byte
}

type nodeSlotKey struct{}

// upgradeTransport is the http.RoundTripper of WebSocket dials to nodes:
// it performs the upgrade request on a new connection of its own. On a
// 101 it puts the connection, and any bytes the node sent after it, in the
// request's nodeSlot for the relay, and gives the response an empty body;
// without a nodeSlot (a websocket package dial) the body is the
// connection.
type upgradeTransport struct {
	dialer      *net.Dialer
	dialTimeout time.Duration
	tls         *tls.Config // for wss://; nil: system roots
}

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, err := t.dial(ctx, req.URL)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	resp, early, err := upgradeExchange(conn, req)
	if !stop() && err == nil { // ctx ended during the exchange
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if slot, ok := ctx.Value(nodeSlotKey{}).(*nodeSlot); ok {
			slot.conn, slot.early = conn, early
			resp.Body = http.NoBody
			return resp, nil
		}
		// A websocket package dial (the health checks' head
		// subscriptions): the body is the connection, early bytes first.
		var r io.Reader = conn
		if len(early) > 0 {
			r = io.MultiReader(bytes.NewReader(early), conn)
		}
		resp.Body = &upgradedBody{Reader: r, Writer: conn, conn: conn}
	}
	return resp, nil
}

// upgradedBody is a 101 response's body that is also the connection's
// writer, as the websocket package needs.
type upgradedBody struct {
	io.Reader
	io.Writer
	conn net.Conn
}

func (b *upgradedBody) Close() error { return b.conn.Close() }

// dial connects to u's host, with TLS for https.
func (t *upgradeTransport) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, t.dialTimeout)
	defer cancel()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[bool]string{true: "443", false: "80"}[u.Scheme == "https"]
	}
	raw, err := t.dialer.DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	raw = newHookConn(raw) // the relay gathers the node's bursts (readhook_unix.go)
	if u.Scheme != "https" {
		return raw, nil
	}
	cfg := t.tls.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// upgradeExchange sends the upgrade request and reads the response. After
// a 101 it returns the bytes read past the headers; otherwise the body is
// the response's own, and closing it closes conn.
func upgradeExchange(conn net.Conn, req *http.Request) (*http.Response, []byte, error) {
	if err := req.Write(conn); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 1<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &closeBody{ReadCloser: resp.Body, conn: conn}
		return resp, nil, nil
	}
	var early []byte
	if n := br.Buffered(); n > 0 {
		early = bytes.Clone(must(br.Peek(n)))
	}
	return resp, early, nil
}

func must(b []byte, _ error) []byte { return b }

// closeBody closes the connection with a refused upgrade's body.
type closeBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *closeBody) Close() error {
	b.ReadCloser.Close()
	return b.conn.Close()
}

// wsTransport dials nodes for WebSockets: always a new connection, upgraded
// by upgradeTransport (no pooled http.Transport state per connection).
func (p *Proxy) wsTransport() http.RoundTripper {
	return &upgradeTransport{
		dialer:      p.dialer(),
		dialTimeout: p.opts.DialTimeout,
		tls:         p.opts.UpstreamTLS,
	}
}
