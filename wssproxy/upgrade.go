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
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file holds the gateway's side of the opening handshake with a node
// (RFC 6455 section 4.1): a request written in one piece and a 101 read
// without building an http.Response, since every client handshake pays
// for it; and upgradeTransport, the same dial for the websocket package
// (the health checks' head subscriptions).

// nodeDialer connects to nodes: TCP, and TLS for wss:// with one
// tls.Config per node, so that its session cache resumes sessions.
type nodeDialer struct {
	dialer *net.Dialer
	tls    *tls.Config // Options.UpstreamTLS; nil: system roots

	mu   sync.Mutex
	tlsc map[string]*tls.Config // by host
}

// newNodeDialer returns the dialer of o's node connections. Their TCP
// keepalive is off while the relay pings the node (PingInterval), which
// finds a dead node sooner and saves four system calls per dial.
func newNodeDialer(o *Options) *nodeDialer {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Resolver: o.resolver}
	if o.PingInterval > 0 {
		d.KeepAlive = -1
	}
	return &nodeDialer{dialer: d, tls: o.UpstreamTLS}
}

// tlsConfig returns the client TLS configuration for host: UpstreamTLS
// with ServerName and HTTP/1.1, and a session cache of the gateway's own
// if UpstreamTLS has none.
func (d *nodeDialer) tlsConfig(host string) *tls.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.tlsc[host]; c != nil {
		return c
	}
	c := d.tls.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if c.ClientSessionCache == nil {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	c.NextProtos = []string{"http/1.1"}
	if d.tlsc == nil {
		d.tlsc = map[string]*tls.Config{}
	}
	d.tlsc[host] = c
	return c
}

// dial connects to u's host (ws/http or wss/https), with TLS for wss and
// https, before deadline.
func (d *nodeDialer) dial(ctx context.Context, u *url.URL, deadline time.Time) (net.Conn, error) {
	if !deadline.IsZero() && time.Until(deadline) < d.dialer.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	host, port := u.Hostname(), u.Port()
	secure := u.Scheme == "wss" || u.Scheme == "https"
	if port == "" {
		port = map[bool]string{true: "443", false: "80"}[secure]
	}
	raw, err := d.dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	raw = newHookConn(raw) // the relay gathers the node's bursts (readhook_unix.go)
	if !secure {
		return raw, nil
	}
	tc := tls.Client(raw, d.tlsConfig(host))
	hctx, cancel := context.WithTimeout(ctx, d.dialer.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// nodeRefusal is a node's answer other than 101 to an upgrade request.
type nodeRefusal struct {
	code   int
	status string // "403 Forbidden"
}

func (e *nodeRefusal) Error() string {
	return "wssproxy: node answered the upgrade with " + e.status
}

// upgrade performs the opening handshake with node b for a client's
// request URL target (its path and query are joined onto b's), sending
// the header lines extra and offering subs, before deadline or until ctx
// ends. It returns the node's socket, with any bytes the node sent after
// its 101, and the subprotocol it chose; an answer other than 101 is a
// *nodeRefusal.
func (d *nodeDialer) upgrade(ctx context.Context, b *backend, target *url.URL, extra []byte, subs []string, deadline time.Time) (*socket, string, error) {
	conn, err := d.dial(ctx, b.url, deadline)
	if err != nil {
		return nil, "", err
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	var nonce [16]byte
	rand.Read(nonce[:])
	var key [24]byte
	base64.StdEncoding.Encode(key[:], nonce[:])
	req := make([]byte, 0, 256+len(extra))
	req = append(req, "GET "...)
	req = append(req, nodeRequestURI(b.url, target)...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, b.url.Host...)
	req = append(req, "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, key[:]...)
	req = append(req, "\r\n"...)
	if len(subs) > 0 {
		req = appendHeader(req, "Sec-WebSocket-Protocol", strings.Join(subs, ","))
	}
	req = append(req, extra...)
	req = append(req, "\r\n"...)
	var sub string
	var early []byte
	if _, err = conn.Write(req); err == nil {
		sub, early, err = readUpgrade(conn, key[:], subs)
	}
	if !stop() && err == nil { // ctx ended during the exchange
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, "", err
	}
	conn.SetDeadline(time.Time{})
	return &socket{conn: conn, side: sideNode, early: early}, sub, nil
}

// upgradeReaders holds the readers of node 101s, which are dropped once
// the headers are read.
var upgradeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// maxUpgradeLines bounds the header lines of a node's 101.
const maxUpgradeLines = 64

// readUpgrade reads the node's answer to an upgrade request with key,
// offering subs, and checks it as RFC 6455 section 4.1 requires. It
// returns the chosen subprotocol and the bytes read past the headers.
func readUpgrade(conn io.Reader, key []byte, subs []string) (sub string, early []byte, err error) {
	br := upgradeReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() {
		br.Reset(nil)
		upgradeReaders.Put(br)
	}()
	line, err := readLine(br)
	if err != nil {
		return "", nil, err
	}
	code, status, ok := parseStatusLine(line)
	if !ok {
		return "", nil, fmt.Errorf("wssproxy: node's answer is not HTTP/1.1: %q", truncate(line, 40))
	}
	if code != http.StatusSwitchingProtocols {
		return "", nil, &nodeRefusal{code, status}
	}
	var want [28]byte
	sum := sha1.Sum(append(slices.Clip(key), "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"...))
	base64.StdEncoding.Encode(want[:], sum[:])
	var connection, upgrade, accepted, acceptSeen, ext bool
	for n := 0; ; n++ {
		if line, err = readLine(br); err != nil {
			return "", nil, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || n == maxUpgradeLines || line[0] == ' ' || line[0] == '\t' {
			return "", nil, errors.New("wssproxy: node's 101 has malformed or too many header lines")
		}
		value = bytes.TrimSpace(value)
		switch name := string(name); { // no allocation: compared, not kept
		case strings.EqualFold(name, "Connection"):
			connection = connection || hasTokenBytes(value, "upgrade")
		case strings.EqualFold(name, "Upgrade"):
			upgrade = upgrade || hasTokenBytes(value, "websocket")
		case strings.EqualFold(name, "Sec-WebSocket-Accept") && !acceptSeen:
			acceptSeen, accepted = true, bytes.Equal(value, want[:])
		case strings.EqualFold(name, "Sec-WebSocket-Protocol") && sub == "":
			sub = string(value)
		case strings.EqualFold(name, "Sec-WebSocket-Extensions"):
			ext = ext || len(value) > 0
		}
	}
	switch {
	case !connection, !upgrade:
		return "", nil, errors.New("wssproxy: node's 101 lacks Connection: Upgrade or Upgrade: websocket")
	case !accepted:
		return "", nil, errors.New("wssproxy: node's 101 has a wrong Sec-WebSocket-Accept")
	case sub != "" && !slices.Contains(subs, sub):
		return "", nil, fmt.Errorf("wssproxy: node chose subprotocol %q, which was not offered", sub)
	case ext:
		return "", nil, errors.New("wssproxy: node chose an extension, which was not offered")
	}
	if n := br.Buffered(); n > 0 {
		early = bytes.Clone(must(br.Peek(n)))
	}
	return sub, early, nil
}

// readLine reads one header line without its CRLF (or LF). A line longer
// than the reader's buffer is an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("wssproxy: node's answer has a header line over 4 KiB")
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

// parseStatusLine parses "HTTP/1.x CODE reason".
func parseStatusLine(line []byte) (code int, status string, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte("HTTP/1."))
	if !found || len(rest) < 5 || rest[1] != ' ' {
		return 0, "", false
	}
	status = string(bytes.TrimSpace(rest[2:]))
	code, err := strconv.Atoi(status[:min(3, len(status))])
	if err != nil || code < 100 || code > 999 {
		return 0, "", false
	}
	return code, status, true
}

func truncate(b []byte, n int) []byte { return b[:min(len(b), n)] }

// hasTokenBytes reports whether the comma-separated list v contains token,
// case-insensitively.
func hasTokenBytes(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if strings.EqualFold(string(bytes.TrimSpace(t)), token) {
			return true
		}
	}
	return false
}

// acceptKey is the Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func must(b []byte, _ error) []byte { return b }

// upgradeTransport is the http.RoundTripper of the websocket package's
// dials to nodes (the head subscriptions): it performs the upgrade
// request on a new connection of the nodeDialer, and the 101's body is
// the connection, any bytes the node sent after it first.
type upgradeTransport struct{ d *nodeDialer }

func (t *upgradeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	deadline, _ := ctx.Deadline()
	conn, err := t.d.dial(ctx, req.URL, deadline)
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

// closeBody closes the connection with a refused upgrade's body.
type closeBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *closeBody) Close() error {
	b.ReadCloser.Close()
	return b.conn.Close()
}
