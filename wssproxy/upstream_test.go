package wssproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoNode is a real WebSocket server on loopback standing in for a node:
// it echoes every message (streaming, so huge ones pass without being held
// whole), answers plain HTTP, and records what it saw.
//
// A text message "close <code> <reason>" makes it close with that code.
type echoNode struct {
	srv *httptest.Server
	// Subprotocols the node accepts.
	subprotocols []string
	// greet, if set, is sent to each client right after the handshake.
	greet string
	// stall makes the node accept the WebSocket but never read from it (so
	// it never answers pings).
	stall bool

	mu      sync.Mutex
	conns   map[*websocket.Conn]bool
	headers []http.Header
	closed  chan error    // receives each connection's end, buffered
	accepts chan string   // receives the chosen subprotocol per connection
	stop    chan struct{} // closed at the end of the test: stalled handlers return
}

func newEchoNode(t *testing.T, configure func(*echoNode)) *echoNode {
	t.Helper()
	n := &echoNode{closed: make(chan error, 1024), accepts: make(chan string, 1024), conns: map[*websocket.Conn]bool{},
		stop: make(chan struct{})}
	if configure != nil {
		configure(n)
	}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	t.Cleanup(func() { close(n.stop) }) // runs first
	return n
}

func (n *echoNode) URL() string { return "ws" + strings.TrimPrefix(n.srv.URL, "http") }

// kill drops every WebSocket connection without a close frame, as a
// crashing node would.
func (n *echoNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		c.CloseNow()
	}
}

func (n *echoNode) Headers() []http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]http.Header(nil), n.headers...)
}

func (n *echoNode) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	n.headers = append(n.headers, r.Header.Clone())
	n.headers[len(n.headers)-1].Set("Host", r.Host)
	n.mu.Unlock()
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		n.serveHTTP(w, r)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: n.subprotocols, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(-1)
	n.mu.Lock()
	n.conns[c] = true
	n.mu.Unlock()
	n.accepts <- c.Subprotocol()
	ctx := context.Background()
	if n.greet != "" {
		c.Write(ctx, websocket.MessageText, []byte(n.greet))
	}
	if n.stall {
		// A hijacked request's context ends only when its handler
		// returns, so wait for the test to end instead.
		<-n.stop
		c.CloseNow()
		n.closed <- errors.New("stalled")
		return
	}
	err = n.echo(ctx, c)
	n.closed <- err
}

func (n *echoNode) echo(ctx context.Context, c *websocket.Conn) error {
	buf := make([]byte, 8<<10)
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			msg := buf[:n]
			if code, reason, ok := parseCloseCommand(msg); ok {
				c.Close(code, reason)
				return fmt.Errorf("closed by command with %d", code)
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		w, err := c.Writer(ctx, typ)
		if err != nil {
			return err
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(w, r, buf); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

func parseCloseCommand(msg []byte) (websocket.StatusCode, string, bool) {
	s, ok := strings.CutPrefix(string(msg), "close ")
	if !ok {
		return 0, "", false
	}
	code, reason, _ := strings.Cut(s, " ")
	c, err := strconv.Atoi(code)
	if err != nil {
		return 0, "", false
	}
	return websocket.StatusCode(c), reason, true
}

// serveHTTP answers plain requests: it echoes a POST body and reports what
// it saw in headers.
func (n *echoNode) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Seen-Host", r.Host)
	w.Header().Set("X-Seen-Origin", r.Header.Get("Origin"))
	w.Header().Set("X-Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet && r.URL.Path == "/health" {
		io.WriteString(w, `{"peers":3,"isSyncing":false,"shouldHavePeers":true}`)
		return
	}
	io.Copy(w, r.Body)
}

// nextClose waits for the next connection end seen by the node.
func (n *echoNode) nextClose(t *testing.T) error {
	t.Helper()
	select {
	case err := <-n.closed:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("node saw no connection end within 10s")
		return nil
	}
}

// startProxy serves a Proxy for upstream on a loopback httptest server and
// returns it with its ws:// URL. Unless opts says otherwise, the proxy is a
// pure splice (AllowAll policy).
func startProxy(t *testing.T, upstream string, opts *Options) (*Proxy, string) {
	t.Helper()
	return startPool(t, []string{upstream}, opts)
}

func dial(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// freeAddr returns a loopback address nothing listens on, for the life
// of the test (see closedAddr).
func freeAddr(t *testing.T) string {
	t.Helper()
	return closedAddr(t)
}

// testLogger sends the proxy's logs to the test's log, shown on failure or
// with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
