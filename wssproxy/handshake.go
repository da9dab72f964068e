package wssproxy

import (
	"bytes"
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

	"github.com/wssgate/wssgate/internal/wsframe"
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

	node, sub, fail := p.dialPool(r, pc)
	if fail != nil {
		if fail.reason == RefusalConnsNode {
			w.Header().Set("Retry-After", "5")
		}
		p.refuse(w, r, fail.status, fail.reason, fail.msg)
		return
	}
	// The answer to a permessage-deflate offer goes in the 101; the node's
	// side never has one.
	if dc, ext := p.negotiateDeflate(r); dc != nil {
		w.Header().Set("Sec-WebSocket-Extensions", ext)
		pc.dfl = dc
	}
	client, err := acceptClient(w, r, sub)
	if err != nil {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "wssproxy: client handshake failed",
			slog.String("client", pc.key), slog.String("error", err.Error()))
		node.conn.Write(wsframe.AppendClose(nil, wsframe.StatusGoingAway, "client handshake failed", true, newMaskKey()))
		node.conn.Close()
		return
	}
	// The relay runs on in goroutines of its own, and ServeHTTP returns:
	// net/http then frees this goroutine's stack (deep after a TLS
	// handshake) and its buffers, which would otherwise be held for the
	// life of every connection.
	spliced = true
	go pc.run(client, node, func() {
		p.unregister(pc)
		release()
	})
}

// acceptClient answers the client's checked handshake with 101, choosing
// the node's subprotocol sub (which the client offered: the node chose it
// from the client's list), and takes the connection, with any bytes the
// client sent right after its handshake, for the relay.
func acceptClient(w http.ResponseWriter, r *http.Request, sub string) (*socket, error) {
	h := w.Header()
	// Keys in canonical form, so that no lookup allocates one.
	h["Upgrade"] = []string{"websocket"}
	h["Connection"] = []string{"Upgrade"}
	h["Sec-Websocket-Accept"] = []string{acceptKey(headerValue(r.Header, "Sec-Websocket-Key"))}
	if sub != "" {
		h["Sec-Websocket-Protocol"] = []string{sub}
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("wssproxy: hijack: %w", err)
	}
	if err := brw.Writer.Flush(); err != nil { // the 101, if still buffered
		conn.Close()
		return nil, err
	}
	s := &socket{conn: conn, side: sideClient}
	if n := brw.Reader.Buffered(); n > 0 {
		s.early = bytes.Clone(must(brw.Reader.Peek(n)))
	}
	return s, nil
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
	if v := headerValue(r.Header, "Sec-Websocket-Version"); v != "13" {
		return http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q; want 13", v)
	}
	key := headerValue(r.Header, "Sec-Websocket-Key")
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
