package rpctest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// start starts a node that the test kills at its end.
func start(t *testing.T, opts *rpctest.Options) *rpctest.Node {
	t.Helper()
	n, err := rpctest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	return n
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is a WebSocket JSON-RPC client that reads messages in order.
type client struct {
	t   *testing.T
	ctx context.Context
	ws  *websocket.Conn
}

func dial(t *testing.T, n *rpctest.Node) *client {
	t.Helper()
	ctx := testContext(t)
	ws, _, err := websocket.Dial(ctx, n.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, ctx: ctx, ws: ws}
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() []byte {
	c.t.Helper()
	_, msg, err := c.ws.Read(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return msg
}

// response is a decoded JSON-RPC response or notification.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *rpctest.Error  `json:"error"`
	Method string          `json:"method"`
	Params struct {
		Subscription string          `json:"subscription"`
		Result       json.RawMessage `json:"result"`
	} `json:"params"`
}

func (c *client) readResponse() response {
	c.t.Helper()
	var r response
	if err := json.Unmarshal(c.read(), &r); err != nil {
		c.t.Fatal(err)
	}
	return r
}

// call sends one request and returns its result, failing on an error.
func (c *client) call(method string, params ...any) json.RawMessage {
	c.t.Helper()
	r := c.callResponse(method, params...)
	if r.Error != nil {
		c.t.Fatalf("%s: %v", method, r.Error)
	}
	return r.Result
}

func (c *client) callResponse(method string, params ...any) response {
	c.t.Helper()
	if params == nil {
		params = []any{}
	}
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(string(req))
	return c.readResponse()
}

func unmarshal[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}
