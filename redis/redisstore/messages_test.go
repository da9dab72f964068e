package redisstore_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/wssproxy"
)

// The per-client JSON-RPC call limit and the HTTP request limit are
// shared too: calls on a connection to one replica use up the client's
// allowance on another.
func TestReplicasShareMessageAndHTTPLimits(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	node := startNode(t)
	var urls []string
	for range 2 {
		st, _ := newStore(t, srv.Addr)
		urls = append(urls, startReplica(t, node.URL(), wssproxy.Options{
			ClientMessageLimit: st.Limiter("messages", 0.001, 3),
			RequestLimit:       st.Limiter("requests", 0.001, 4),
		}))
	}
	const client = "203.0.113.50"
	_, a := dial(t, urls[0], client)
	_, b := dial(t, urls[1], client)
	rpc := func(c *websocket.Conn, id int) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"system_health","params":[]}`, id)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, reply, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(reply)
	}
	for id := 1; id <= 3; id++ {
		if r := rpc(a, id); strings.Contains(r, `"error"`) {
			t.Fatalf("call %d on replica 0: %s", id, r)
		}
	}
	if r := rpc(b, 4); !strings.Contains(r, `"code":-32005`) || !strings.Contains(r, `"id":4`) {
		t.Errorf("fourth call, on replica 1: %s; want -32005 for id 4 (the client's 3 are used on replica 0)", r)
	}

	post := func(url string) int {
		res, err := http.Post(strings.Replace(url, "ws://", "http://", 1), "application/json",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// POSTs carry no X-Forwarded-For: their key is the loopback peer,
	// a client of its own with a burst of 4 over both replicas.
	got := []int{post(urls[0]), post(urls[1]), post(urls[0]), post(urls[1]), post(urls[0])}
	want := []int{200, 200, 200, 200, 429}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("POST statuses alternating over 2 replicas = %v, want %v", got, want)
	}
}
