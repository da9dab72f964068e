package wssproxy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// followEvent reads the next message, a chainHead_v1_followEvent for sub,
// and returns its event.
func followEvent(t *testing.T, ctx context.Context, c *websocket.Conn, sub string) map[string]any {
	t.Helper()
	m := readMessage(t, ctx, c)
	if m.Method != "chainHead_v1_followEvent" || string(m.Params.Subscription) != sub {
		t.Fatalf("got %+v, want a follow event for %s", m, sub)
	}
	var ev map[string]any
	json.Unmarshal(m.Params.Result, &ev)
	return ev
}

// TestShareChainHeadFollow is a scripted new-API client in shared mode:
// each follow is its own on the node, its events reach only its client,
// and the calls naming it go to the node connection that holds it.
func TestShareChainHeadFollow(t *testing.T) {
	node := startNode(t)
	_, url := startShared(t, nil, nil, node)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conns := make([]*websocket.Conn, 2)
	subs := make([]string, 2)
	for i := range conns {
		conns[i] = dialWS(t, ctx, url)
		send(t, ctx, conns[i], `{"jsonrpc":"2.0","id":1,"method":"chainHead_v1_follow","params":[true]}`)
		r := readMessage(t, ctx, conns[i])
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		subs[i] = string(r.Result)
		if ev := followEvent(t, ctx, conns[i], subs[i]); ev["event"] != "initialized" {
			t.Fatalf("first event %v", ev)
		}
	}
	if got := countSeen(node, "chainHead_v1_follow"); got != 2 {
		t.Errorf("node saw %d follows, want 2 (never shared)", got)
	}
	node.Advance()
	_, hash := node.BestBlock()
	for i, c := range conns {
		for _, want := range []string{"newBlock", "bestBlockChanged", "finalized"} {
			if ev := followEvent(t, ctx, c, subs[i]); ev["event"] != want {
				t.Fatalf("client %d: event %v, want %s", i, ev, want)
			}
		}
	}
	send(t, ctx, conns[0], `{"jsonrpc":"2.0","id":2,"method":"chainHead_v1_header","params":[`+subs[0]+`,"`+hash+`"]}`)
	if r := readMessage(t, ctx, conns[0]); r.Error != nil || len(r.Result) < 100 || string(r.ID) != "2" {
		t.Errorf("header: %+v", r)
	}
	// Another client's follow id means nothing on this connection.
	send(t, ctx, conns[1], `{"jsonrpc":"2.0","id":3,"method":"chainHead_v1_header","params":[`+subs[0]+`,"`+hash+`"]}`)
	if r := readMessage(t, ctx, conns[1]); r.Error == nil {
		t.Errorf("header with another client's follow: %+v, want an error", r)
	}
	// An operation: its event reaches its own client only.
	send(t, ctx, conns[0], `{"jsonrpc":"2.0","id":"op","method":"chainHead_v1_body","params":[`+subs[0]+`,"`+hash+`"]}`)
	r := readMessage(t, ctx, conns[0])
	var started struct{ Result, OperationID string }
	json.Unmarshal(r.Result, &started)
	if string(r.ID) != `"op"` || started.Result != "started" {
		t.Fatalf("body: %+v", r)
	}
	if ev := followEvent(t, ctx, conns[0], subs[0]); ev["event"] != "operationBodyDone" || ev["operationId"] != started.OperationID {
		t.Errorf("operation event %v", ev)
	}
	send(t, ctx, conns[1], `{"jsonrpc":"2.0","id":"next","method":"system_name"}`)
	if r := readMessage(t, ctx, conns[1]); string(r.ID) != `"next"` {
		t.Errorf("the other client got %+v before its own answer", r)
	}
	send(t, ctx, conns[0], `{"jsonrpc":"2.0","id":4,"method":"chainHead_v1_unpin","params":[`+subs[0]+`,"`+hash+`"]}`)
	if r := readMessage(t, ctx, conns[0]); r.Error != nil || string(r.Result) != "null" {
		t.Errorf("unpin: %+v", r)
	}
	send(t, ctx, conns[0], `{"jsonrpc":"2.0","id":5,"method":"chainHead_v1_unfollow","params":[`+subs[0]+`]}`)
	if r := readMessage(t, ctx, conns[0]); r.Error != nil || string(r.Result) != "null" {
		t.Errorf("unfollow: %+v", r)
	}
	if got := countSeen(node, "chainHead_v1_unfollow"); got != 1 {
		t.Errorf("node saw %d unfollows, want 1", got)
	}
	node.Advance()
	for _, want := range []string{"newBlock", "bestBlockChanged", "finalized"} {
		if ev := followEvent(t, ctx, conns[1], subs[1]); ev["event"] != want {
			t.Fatalf("event %v, want %s", ev, want)
		}
	}
	// The unfollowed client gets nothing more: its next message is the
	// answer to its next call.
	send(t, ctx, conns[0], `{"jsonrpc":"2.0","id":6,"method":"system_name"}`)
	if r := readMessage(t, ctx, conns[0]); string(r.ID) != "6" {
		t.Errorf("after unfollow: %+v", r)
	}
}

// TestShareFollowNodeKilled: a follow cannot move to another node (its
// pinned blocks and operations live there), so it ends with the stop
// event the spec defines, and the client follows again.
func TestShareFollowNodeKilled(t *testing.T) {
	a, b := startNode(t), startNode(t)
	_, url := startShared(t, &ShareOptions{ConnsPerNode: 1}, nil, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := dialWS(t, ctx, url)
	send(t, ctx, c, `{"jsonrpc":"2.0","id":1,"method":"chainHead_v1_follow","params":[false]}`)
	sub := string(readMessage(t, ctx, c).Result)
	followEvent(t, ctx, c, sub)
	dead, _ := carrier(t, "chainHead_v1_follow", a, b)
	dead.Kill()
	if ev := followEvent(t, ctx, c, sub); ev["event"] != "stop" {
		t.Fatalf("event %v, want stop", ev)
	}
	send(t, ctx, c, `{"jsonrpc":"2.0","id":2,"method":"chainHead_v1_follow","params":[false]}`)
	r := readMessage(t, ctx, c)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	if ev := followEvent(t, ctx, c, string(r.Result)); ev["event"] != "initialized" {
		t.Errorf("new follow: %v", ev)
	}
}
