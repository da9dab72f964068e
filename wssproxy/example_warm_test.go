package wssproxy_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/wssproxy"
)

// ExampleOptions_nodeWarmConns keeps two node connections dialed ahead of
// clients: a client takes one, and the proxy dials its replacement.
func ExampleOptions_nodeWarmConns() {
	node, err := rpctest.Start(&rpctest.Options{Logger: slog.New(slog.DiscardHandler)}) // a fake Substrate node
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	p, err := wssproxy.New(node.URL(), &wssproxy.Options{
		NodeWarmConns:  2,
		Logger:         slog.New(slog.DiscardHandler),
		HealthInterval: -1, // no head subscription: the node holds only the proxy's relayed connections
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gw := httptest.NewServer(p)
	defer gw.Close()
	waitWarm := func(warm int, conns int64) {
		for s := p.Nodes()[0]; s.WarmConns != warm || s.Conns != conns; s = p.Nodes()[0] {
			time.Sleep(time.Millisecond)
		}
		fmt.Printf("%d connections to the node, %d of them warm\n", conns, warm)
	}
	waitWarm(2, 2)

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}`))
	_, reply, _ := c.Read(ctx)
	fmt.Printf("%s\n", reply)
	waitWarm(2, 3)
	// Output:
	// 2 connections to the node, 2 of them warm
	// {"jsonrpc":"2.0","id":1,"result":"Development"}
	// 3 connections to the node, 2 of them warm
}
