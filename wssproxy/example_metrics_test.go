package wssproxy_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/wssproxy"
)

// ExampleMetrics sets two of the proxy's metrics hooks; the others stay
// nil and cost nothing. With MaxConnsPerNode 1, a second client is
// refused before the node is dialed.
func ExampleMetrics() {
	node := echoNode()
	defer node.Close()
	opened := make(chan string, 1)
	p, err := wssproxy.New("ws"+strings.TrimPrefix(node.URL, "http"), &wssproxy.Options{
		MaxConnsPerNode: 1,
		Logger:          slog.New(slog.DiscardHandler),
		Metrics: &wssproxy.Metrics{
			ConnOpened: func(upstream string) { opened <- upstream },
			Refused: func(r wssproxy.Refusal) {
				fmt.Printf("refused: %s, status %d, WebSocket %v\n", r.Reason, r.Status, r.WebSocket)
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gw := httptest.NewServer(p)
	defer gw.Close()
	url := "ws" + strings.TrimPrefix(gw.URL, "http")

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	<-opened // the hook runs as the splice starts, just after the 101
	fmt.Println("connection opened")
	_, resp, _ := websocket.Dial(ctx, url, nil)
	fmt.Println(resp.Status, "Retry-After:", resp.Header.Get("Retry-After"))
	// Output:
	// connection opened
	// refused: conns_per_node, status 503, WebSocket true
	// 503 Service Unavailable Retry-After: 5
}
