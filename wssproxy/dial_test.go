package wssproxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// TestNodeBadUpgrade: a node whose 101 breaks RFC 6455 section 4.1 (a
// wrong Sec-WebSocket-Accept, a subprotocol or extension nobody offered,
// no Upgrade header) is refused: the client gets 502 and never a socket.
func TestNodeBadUpgrade(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		headers func(key string) string
	}{
		{"wrong accept", func(string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n"
		}},
		{"unoffered subprotocol", func(key string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Protocol: evil\r\n"
		}},
		{"unoffered extension", func(key string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
		}},
		{"no upgrade header", func(key string) string {
			return "Connection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", tt.headers(r.Header.Get("Sec-WebSocket-Key")))
				brw.Flush()
				brw.ReadByte() // until the gateway hangs up
			}))
			t.Cleanup(node.Close)
			_, url := startProxy(t, "ws"+strings.TrimPrefix(node.URL, "http"), nil)
			_, resp, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{Subprotocols: []string{"good"}})
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("dial: %v, %v; want a 502", err, resp)
			}
		})
	}
}
