package wssproxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/ratelimit"
)

// TestRefusalBodies checks that refusals of JSON-RPC requests are JSON-RPC
// error objects a client can show (with the request's id when the gateway
// read it), and that everything else gets plain text.
func TestRefusalBodies(t *testing.T) {
	t.Parallel()
	exhausted := func() ratelimit.Limiter {
		b := ratelimit.NewBuckets(1e-9, 1)
		b.Allow("127.0.0.1")
		return b
	}
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	call := `{"jsonrpc":"2.0","id":7,"method":"system_health","params":[]}`
	type rpcErr struct {
		Code int    `json:"code"`
		ID   string `json:"id"` // raw JSON
	}
	tests := []struct {
		name       string
		nodeDown   bool
		opts       Options
		method     string
		header     http.Header
		body       string
		chunked    bool
		status     int
		want       *rpcErr // nil: plain text
		retryAfter bool
		detail     string
	}{
		{name: "rate, JSON content type", opts: Options{RequestLimit: exhausted()}, method: http.MethodPost, header: jsonCT, body: call,
			status: 429, want: &rpcErr{-32005, "null"}, retryAfter: true, detail: "rate limit"},
		{name: "rate, charset", opts: Options{RequestLimit: exhausted()}, method: http.MethodPost,
			header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: call,
			status: 429, want: &rpcErr{-32005, "null"}, retryAfter: true},
		{name: "rate, text", opts: Options{RequestLimit: exhausted()}, method: http.MethodPost,
			header: http.Header{"Content-Type": {"text/plain"}}, body: "hello", status: 429, retryAfter: true, detail: "rate limit"},
		{name: "rate, GET", opts: Options{RequestLimit: exhausted()}, method: http.MethodGet, status: 429, retryAfter: true},
		{name: "rate, WebSocket", opts: Options{RequestLimit: exhausted()}, method: http.MethodGet,
			header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
				"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Content-Type": {"application/json"}},
			status: 429, retryAfter: true},
		{name: "too large by length", opts: Options{MaxBodyBytes: 10}, method: http.MethodPost, header: jsonCT, body: call,
			status: 413, want: &rpcErr{-32005, "null"}, detail: "too large"},
		{name: "too large, chunked, no content type", opts: Options{MaxBodyBytes: 10}, method: http.MethodPost,
			body: call, chunked: true, status: 413, want: &rpcErr{-32005, "null"}},
		{name: "node down, id read", nodeDown: true, method: http.MethodPost, body: call,
			status: 502, want: &rpcErr{-32603, "7"}, detail: "connection refused"},
		{name: "node down, string id", nodeDown: true, method: http.MethodPost, header: jsonCT,
			body: ` {"jsonrpc":"2.0","id":"a\"b","method":"chain_getHeader"}`, status: 502, want: &rpcErr{-32603, `"a\"b"`}},
		{name: "node down, batch", nodeDown: true, method: http.MethodPost, header: jsonCT,
			body: "[" + call + "," + call + "]", status: 502, want: &rpcErr{-32603, "null"}},
		{name: "node down, no policy", nodeDown: true, opts: Options{Policy: AllowAll()}, method: http.MethodPost, header: jsonCT,
			body: call, status: 502, want: &rpcErr{-32603, "null"}},
		{name: "node down, not JSON", nodeDown: true, method: http.MethodGet, status: 502, detail: "connection refused"},
		{name: "PUT, JSON-RPC body", method: http.MethodPut, body: call, status: 405, want: &rpcErr{-32600, "7"}, detail: "PUT not allowed"},
		{name: "PUT, text body", method: http.MethodPut, body: "hello", status: 405, detail: "PUT not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newEchoNode(t, nil).URL()
			if tt.nodeDown {
				up = "ws://" + freeAddr(t)
			}
			opts := tt.opts
			if opts.Policy == nil {
				opts.Policy = DefaultPolicy()
			}
			_, url := startProxy(t, up, &opts)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body)
				}
			}
			req, err := http.NewRequestWithContext(testCtx(t), tt.method, "http"+strings.TrimPrefix(url, "ws"), body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.status, got)
			}
			if ra := resp.Header.Get("Retry-After"); tt.retryAfter != (ra != "") {
				t.Errorf("Retry-After %q, want it set: %v", ra, tt.retryAfter)
			}
			if !strings.Contains(string(got), tt.detail) {
				t.Errorf("body %q does not name %q", got, tt.detail)
			}
			ct := resp.Header.Get("Content-Type")
			if tt.want == nil {
				if !strings.HasPrefix(ct, "text/plain") || !strings.HasPrefix(string(got), "wssgate: ") {
					t.Errorf("got %s %q, want plain text", ct, got)
				}
				return
			}
			var msg struct {
				JSONRPC string `json:"jsonrpc"`
				Error   struct{ Code int }
				ID      json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(got, &msg); err != nil || !strings.HasPrefix(ct, "application/json") || msg.JSONRPC != "2.0" {
				t.Fatalf("got %s %q (%v), want a JSON-RPC error", ct, got, err)
			}
			if diff := cmp.Diff(*tt.want, rpcErr{msg.Error.Code, string(msg.ID)}); diff != "" {
				t.Errorf("JSON-RPC error (-want +got):\n%s\nbody %s", diff, got)
			}
		})
	}
}
