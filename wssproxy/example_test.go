package wssproxy_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/wssproxy"
)

// echoNode stands in for a node: it echoes each WebSocket message.
func echoNode() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, msg)
		}
	}))
}

func ExampleNew() {
	node := echoNode()
	defer node.Close()

	p, err := wssproxy.New("ws"+strings.TrimPrefix(node.URL, "http"), &wssproxy.Options{
		RequestLimit: ratelimit.NewBuckets(2, 5),   // nginx limit_req rate=2r/s burst=5
		ConnLimit:    &ratelimit.Conns{PerKey: 50}, // mod_qos QS_SrvMaxConnPerIP 50
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gw := httptest.NewServer(p) // in production: wssproxy.NewServer with certs.TLSConfig
	defer gw.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}`))
	_, reply, _ := c.Read(ctx)
	fmt.Printf("echoed through the gateway: %s\n", reply)

	c.Write(ctx, websocket.MessageText, []byte(`{"id":2,"jsonrpc":"2.0","method":"author_rotateKeys","params":[]}`))
	_, reply, _ = c.Read(ctx)
	fmt.Printf("refused by the default policy: %.80s...\n", reply)
	// Output:
	// echoed through the gateway: {"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}
	// refused by the default policy: {"jsonrpc":"2.0","error":{"code":-32601,"message":"wssproxy: method author_rotat...
}

func ExampleOptions_Policy() {
	// Allow only what a block explorer needs, on top of the default denials.
	policy := &wssproxy.Policy{
		Allow: []string{"chain_*", "state_getMetadata", "state_getRuntimeVersion", "system_*", "rpc_methods"},
		Deny:  wssproxy.UnsafeMethods,
	}
	fmt.Println(policy.Check("chain_getBlock"))
	fmt.Println(policy.Check("author_submitExtrinsic"))
	// Output:
	// <nil>
	// wssproxy: method author_submitExtrinsic is not allowed: not in the gateway's Policy.Allow list
}

func ExampleNewServer() {
	node := echoNode()
	defer node.Close()
	p, err := wssproxy.New("ws"+strings.TrimPrefix(node.URL, "http"), &wssproxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	srv := wssproxy.NewServer("127.0.0.1:0", p, nil, nil) // tlsConfig: certs.TLSConfig(src)
	fmt.Println(srv.ReadHeaderTimeout, srv.MaxHeaderBytes)

	// On SIGTERM: stop accepting, then drain the WebSockets (clients get 1001).
	ctx := context.Background()
	srv.Shutdown(ctx)
	fmt.Println(p.Shutdown(ctx))
	// Output:
	// 10s 16384
	// <nil>
}

func ExampleShareOptions() {
	node, err := rpctest.Start(&rpctest.Options{Logger: slog.New(slog.DiscardHandler)}) // a fake Substrate node
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	p, err := wssproxy.New(node.URL(), &wssproxy.Options{
		Share:  &wssproxy.ShareOptions{ConnsPerNode: 1}, // shared mode; the zero ShareOptions has 4
		Logger: slog.New(slog.DiscardHandler),
		// Health checks subscribe to each node's heads too (clients' head
		// subscriptions then ride on theirs); off here so that the count
		// below does not depend on which of the two comes first.
		HealthInterval: -1,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gw := httptest.NewServer(p)
	defer gw.Close()

	ctx := context.Background()
	for i := range 3 {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http"), nil)
		if err != nil {
			log.Fatal(err)
		}
		defer c.CloseNow()
		c.Write(ctx, websocket.MessageText, []byte(`{"id":7,"jsonrpc":"2.0","method":"chain_subscribeNewHeads","params":[]}`))
		_, reply, _ := c.Read(ctx) // {"jsonrpc":"2.0","id":7,"result":"<the client's own id>"}
		_, head, _ := c.Read(ctx)  // the latest head, at once
		fmt.Printf("client %d: %.32s, then %.41s\n", i, reply, head)
	}
	subscribes := 0
	for _, m := range node.Seen() {
		if m == "chain_subscribeNewHeads" {
			subscribes++
		}
	}
	fmt.Printf("the node has %d connection and saw %d subscribe\n", node.Conns(), subscribes)
	// Output:
	// client 0: {"jsonrpc":"2.0","id":7,"result", then {"jsonrpc":"2.0","method":"chain_newHead"
	// client 1: {"jsonrpc":"2.0","id":7,"result", then {"jsonrpc":"2.0","method":"chain_newHead"
	// client 2: {"jsonrpc":"2.0","id":7,"result", then {"jsonrpc":"2.0","method":"chain_newHead"
	// the node has 1 connection and saw 1 subscribe
}

// A client that offers permessage-deflate, as browsers and @polkadot/api
// do, gets big replies compressed; the node sees plain messages.
func ExampleDeflateOptions() {
	node := echoNode()
	defer node.Close()

	p, err := wssproxy.New("ws"+strings.TrimPrefix(node.URL, "http"), &wssproxy.Options{
		Deflate: &wssproxy.DeflateOptions{Level: 4, Threshold: 512}, // nil: on, level 1, 1 KiB
		Policy:  wssproxy.AllowAll(),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gw := httptest.NewServer(p)
	defer gw.Close()

	ctx := context.Background()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http"),
		&websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	fmt.Println(resp.Header.Get("Sec-WebSocket-Extensions"))
	big := `{"jsonrpc":"2.0","id":1,"result":"0x` + strings.Repeat("00", 4096) + `"}`
	c.Write(ctx, websocket.MessageText, []byte(big))
	_, reply, _ := c.Read(ctx)
	fmt.Println(len(reply), string(reply) == big)
	// Output:
	// permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// 8230 true
}

func ExampleNewListener() {
	node := echoNode()
	defer node.Close()
	p, err := wssproxy.New("ws"+strings.TrimPrefix(node.URL, "http"), &wssproxy.Options{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0") // in production: ":443"
	if err != nil {
		log.Fatal(err)
	}
	srv := wssproxy.NewServer(ln.Addr().String(), p, nil, nil)
	// With TLS: srv.ServeTLS(wssproxy.NewListener(ln), "", "")
	go srv.Serve(wssproxy.NewListener(ln))
	defer srv.Close()

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 { // pipelined: the gateway may send them on in one write
		c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"id":%d,"jsonrpc":"2.0","method":"system_health","params":[]}`, i))
	}
	for range 3 {
		_, reply, _ := c.Read(ctx)
		fmt.Printf("%s\n", reply)
	}
	// Output:
	// {"id":0,"jsonrpc":"2.0","method":"system_health","params":[]}
	// {"id":1,"jsonrpc":"2.0","method":"system_health","params":[]}
	// {"id":2,"jsonrpc":"2.0","method":"system_health","params":[]}
}
