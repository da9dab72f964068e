package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// headScan bounds how far into a message the id and method are looked for.
const headScan = 256

// dialer opens WebSocket connections to -url with the TLS settings of the
// flags.
type dialer struct {
	url       string
	opts      *websocket.DialOptions
	readLimit int64
}

func newDialer(c *config) (*dialer, error) {
	cfg := &tls.Config{InsecureSkipVerify: c.insecure}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", c.caFile)
		}
	}
	if c.classic {
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	if c.resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	tr := &http.Transport{
		Proxy:               nil, // never an HTTP proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &dialer{
		url: c.url,
		opts: &websocket.DialOptions{
			HTTPClient:      &http.Client{Transport: tr},
			CompressionMode: websocket.CompressionDisabled,
		},
		readLimit: c.readLimit,
	}, nil
}

// statusError is a refused WebSocket handshake.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return fmt.Sprintf("dial: HTTP %d: %v", e.code, e.err) }
func (e *statusError) Unwrap() error { return e.err }

func (d *dialer) dial(ctx context.Context) (*websocket.Conn, *http.Response, error) {
	conn, resp, err := websocket.Dial(ctx, d.url, d.opts)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, resp, &statusError{resp.StatusCode, err}
		}
		return nil, resp, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(d.readLimit)
	return conn, resp, nil
}

// request builds the calls of a run in one reused buffer: -method with
// -params, or bench_echo padded to -size bytes (the benchmarks' call).
type request struct {
	buf    []byte
	size   int
	method string // "" or "bench_echo": the padded echo call
	params string // JSON array for other methods
}

const (
	reqPrefix = `{"jsonrpc":"2.0","id":`
	reqMiddle = `,"method":"bench_echo","params":["`
	reqSuffix = `"]}`
)

func newRequest(size int) *request {
	return &request{size: size}
}

// newCall returns the request of the flags.
func newCall(c *config) *request {
	return &request{size: c.size, method: c.method, params: c.params}
}

// build returns the call with the given id. A bench_echo call is padded
// with 'x' to the request's size (or longer, if the size is too small to
// hold the call). The result is valid until the next call.
func (r *request) build(id int64) []byte {
	b := append(r.buf[:0], reqPrefix...)
	b = strconv.AppendInt(b, id, 10)
	if r.method != "" && r.method != "bench_echo" {
		b = append(b, `,"method":`...)
		b = strconv.AppendQuote(b, r.method)
		b = append(b, `,"params":`...)
		b = append(b, r.params...)
		b = append(b, '}')
		r.buf = b
		return b
	}
	b = append(b, reqMiddle...)
	b = appendPad(b, r.size-len(b)-len(reqSuffix))
	b = append(b, reqSuffix...)
	r.buf = b
	return b
}

var padChunk = bytes.Repeat([]byte{'x'}, 4096)

func appendPad(b []byte, n int) []byte {
	for n > 0 {
		k := min(n, len(padChunk))
		b = append(b, padChunk[:k]...)
		n -= k
	}
	return b
}

// readMsg reads one message into buf, growing it as needed.
func readMsg(ctx context.Context, c *websocket.Conn, buf []byte) (websocket.MessageType, []byte, error) {
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return 0, buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return typ, buf, nil
		}
		if err != nil {
			return typ, buf, err
		}
	}
}

// rpcError is a JSON-RPC error reply.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// checkReply verifies that msg is a successful reply to call id. An error
// reply returns an *rpcError.
func checkReply(typ websocket.MessageType, msg []byte, id int64) error {
	if typ != websocket.MessageText {
		return errors.New("reply is not a text message")
	}
	head := msg[:min(len(msg), headScan)]
	if bytes.Contains(msg, []byte(`"error"`)) && !bytes.Contains(head, []byte(`"result"`)) {
		var reply struct {
			Error *rpcError `json:"error"`
		}
		if json.Unmarshal(msg, &reply) == nil && reply.Error != nil {
			return reply.Error
		}
		return fmt.Errorf("error reply: %.200s", msg)
	}
	got, ok := field(head, `"id":`)
	if !ok { // a node puts the id last
		got, ok = field(msg[max(0, len(msg)-headScan):], `"id":`)
	}
	if !ok || string(got) != strconv.FormatInt(id, 10) {
		return fmt.Errorf("reply id %s, want %d: %.100s", got, id, msg)
	}
	return nil
}

// field returns the raw JSON value (a number, a string with its quotes, or
// a literal) after key in head. It assumes the compact form our messages
// and node replies use; callers fall back to encoding/json when it fails.
func field(head []byte, key string) ([]byte, bool) {
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return nil, false
	}
	v := bytes.TrimLeft(head[i+len(key):], " ")
	if len(v) > 0 && v[0] == '"' {
		j := bytes.IndexByte(v[1:], '"')
		if j < 0 {
			return nil, false
		}
		return v[:j+2], true
	}
	j := bytes.IndexAny(v, ",} ")
	if j <= 0 {
		return nil, false
	}
	return v[:j], true
}

// roundTrip sends one call and checks the reply.
func roundTrip(ctx context.Context, c *websocket.Conn, req *request, id int64, buf []byte) ([]byte, error) {
	if err := c.Write(ctx, websocket.MessageText, req.build(id)); err != nil {
		return buf, fmt.Errorf("write: %w", err)
	}
	typ, buf, err := readMsg(ctx, c, buf)
	if err != nil {
		return buf, fmt.Errorf("read: %w", err)
	}
	return buf, checkReply(typ, buf, id)
}
