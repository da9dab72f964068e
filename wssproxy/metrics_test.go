package wssproxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/ratelimit"
)

// hookRecorder records the Metrics hooks a proxy calls.
type hookRecorder struct {
	mu       sync.Mutex
	refused  []Refusal
	opened   int
	dialErrs int
}

func (h *hookRecorder) metrics() *Metrics {
	return &Metrics{
		Refused: func(r Refusal) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.refused = append(h.refused, r)
		},
		ConnOpened: func(string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.opened++
		},
		NodeDial: func(_ string, _ time.Duration, err error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if err != nil {
				h.dialErrs++
			}
		},
	}
}

func (h *hookRecorder) snapshot() ([]Refusal, int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Refusal(nil), h.refused...), h.opened, h.dialErrs
}

// stallingNode accepts TCP connections and never answers them.
func stallingNode(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return "ws://" + l.Addr().String()
}

// statusNode is a node that answers every request, upgrades included,
// with status, as a node over its connection limit or behind an ACL does.
// It returns its ws:// URL.
func statusNode(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, http.StatusText(status), status)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestRefusalCountedOnce drives every refusal path through a real proxy
// and checks that each refused request reaches the Refused hook exactly
// once, with the status the client saw, and opens no connection.
func TestRefusalCountedOnce(t *testing.T) {
	t.Parallel()
	wsUpgrade := func(h http.Header) {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	type request struct {
		method string
		header func(http.Header)
		body   string
		size   int64 // Content-Length; -1 for chunked
	}
	ws := request{method: http.MethodGet, header: wsUpgrade}
	post := request{method: http.MethodPost, header: func(h http.Header) { h.Set("Content-Type", "application/json") },
		body: `{"jsonrpc":"2.0","id":1,"method":"system_health"}`, size: 49}
	exhausted := func() ratelimit.Limiter {
		b := ratelimit.NewBuckets(1e-9, 1)
		b.Allow("127.0.0.1")
		return b
	}
	tests := []struct {
		name     string
		upstream func(t *testing.T) []string
		opts     func() *Options
		before   func(t *testing.T, p *Proxy)
		req      request
		want     Refusal
		dialErrs int
	}{
		{name: "bad handshake", req: request{method: http.MethodGet, header: func(h http.Header) {
			wsUpgrade(h)
			h.Set("Sec-WebSocket-Version", "8")
		}}, want: Refusal{RefusalBadHandshake, http.StatusUpgradeRequired, true}},
		{name: "h2c upgrade", req: request{method: http.MethodGet, header: func(h http.Header) {
			h.Set("Connection", "Upgrade")
			h.Set("Upgrade", "h2c")
		}}, want: Refusal{RefusalBadHandshake, http.StatusBadRequest, true}},
		{name: "origin", opts: func() *Options { return &Options{AllowedOrigins: []string{"ok.example"}} },
			req: request{method: http.MethodGet, header: func(h http.Header) {
				wsUpgrade(h)
				h.Set("Origin", "https://evil.example")
			}}, want: Refusal{RefusalOrigin, http.StatusForbidden, true}},
		{name: "websocket rate", opts: func() *Options { return &Options{RequestLimit: exhausted()} },
			req: ws, want: Refusal{RefusalRate, http.StatusTooManyRequests, true}},
		{name: "http rate", opts: func() *Options { return &Options{RequestLimit: exhausted()} },
			req: post, want: Refusal{RefusalRate, http.StatusTooManyRequests, false}},
		{name: "conns per client", opts: func() *Options {
			c := &ratelimit.Conns{PerKey: 1}
			c.Acquire("127.0.0.1")
			return &Options{ConnLimit: c}
		}, req: ws, want: Refusal{RefusalConnsClient, http.StatusTooManyRequests, true}},
		{name: "conns total", opts: func() *Options {
			c := &ratelimit.Conns{Total: 1}
			c.Acquire("someone else")
			return &Options{ConnLimit: c}
		}, req: ws, want: Refusal{RefusalConnsTotal, http.StatusServiceUnavailable, true}},
		{name: "shutting down", before: func(t *testing.T, p *Proxy) { p.Close() },
			req: ws, want: Refusal{RefusalShuttingDown, http.StatusServiceUnavailable, true}},
		{name: "node down", upstream: func(t *testing.T) []string { return []string{"ws://" + freeAddr(t)} },
			req: ws, want: Refusal{RefusalNodeDown, http.StatusBadGateway, true}, dialErrs: 1},
		{name: "pool down", upstream: func(t *testing.T) []string {
			return []string{"ws://" + freeAddr(t), "ws://" + freeAddr(t)}
		}, req: ws, want: Refusal{RefusalNodeDown, http.StatusBadGateway, true}, dialErrs: 2},
		{name: "node timeout", upstream: func(t *testing.T) []string { return []string{stallingNode(t)} },
			opts: func() *Options { return &Options{HandshakeTimeout: 100 * time.Millisecond} },
			req:  ws, want: Refusal{RefusalNodeTimeout, http.StatusGatewayTimeout, true}, dialErrs: 1},
		{name: "node refuses upgrade", upstream: func(t *testing.T) []string {
			return []string{statusNode(t, http.StatusForbidden)}
		}, req: ws, want: Refusal{RefusalNodeRefused, http.StatusBadGateway, true}, dialErrs: 1},
		{name: "http node down", upstream: func(t *testing.T) []string { return []string{"ws://" + freeAddr(t)} },
			req: post, want: Refusal{RefusalNodeDown, http.StatusBadGateway, false}},
		{name: "body too large", opts: func() *Options { return &Options{MaxBodyBytes: 10} },
			req: post, want: Refusal{RefusalBodyTooLarge, http.StatusRequestEntityTooLarge, false}},
		{name: "HTTP method", req: request{method: http.MethodPatch, header: post.header, body: post.body, size: 49},
			want: Refusal{RefusalMethod, http.StatusMethodNotAllowed, false}},
		{name: "chunked body too large", opts: func() *Options { return &Options{MaxBodyBytes: 10} },
			req: request{method: http.MethodPost, header: post.header, size: -1,
				body: post.body},
			want: Refusal{RefusalBodyTooLarge, http.StatusRequestEntityTooLarge, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ups := []string{newEchoNode(t, nil).URL()}
			if tt.upstream != nil {
				ups = tt.upstream(t)
			}
			opts := &Options{}
			if tt.opts != nil {
				opts = tt.opts()
			}
			rec := &hookRecorder{}
			opts.Metrics = rec.metrics()
			opts.Policy = DefaultPolicy()
			p, url := startPool(t, ups, opts)
			if tt.before != nil {
				tt.before(t, p)
			}
			var body io.Reader
			if tt.req.body != "" {
				body = strings.NewReader(tt.req.body)
				if tt.req.size < 0 {
					body = io.MultiReader(body) // hides the length: chunked
				}
			}
			req, err := http.NewRequestWithContext(testCtx(t), tt.req.method, "http"+strings.TrimPrefix(url, "ws"), body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.req.size > 0 {
				req.ContentLength = tt.req.size
			}
			tt.req.header(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want.Status {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, buf.String(), tt.want.Status)
			}
			got, opened, dialErrs := rec.snapshot()
			if diff := cmp.Diff([]Refusal{tt.want}, got); diff != "" {
				t.Errorf("Refused hook calls (-want +got):\n%s", diff)
			}
			if opened != 0 {
				t.Errorf("ConnOpened called %d times for a refused request", opened)
			}
			if dialErrs != tt.dialErrs {
				t.Errorf("NodeDial reported %d failures, want %d", dialErrs, tt.dialErrs)
			}
		})
	}
}

// TestMetricsNilHooks: a Metrics with no hook set, and one with only some,
// are both fine: nil hooks are skipped.
func TestMetricsNilHooks(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	var opened int
	var mu sync.Mutex
	_, url := startProxy(t, node.URL(), &Options{Metrics: &Metrics{ConnOpened: func(string) {
		mu.Lock()
		opened++
		mu.Unlock()
	}}})
	c := dial(t, url, nil)
	ctx := testCtx(t)
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	mu.Lock()
	defer mu.Unlock()
	if opened != 1 {
		t.Errorf("ConnOpened called %d times, want 1", opened)
	}
}
