package rpctest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestChainHeadFollow(t *testing.T) {
	n := start(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, n.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	rw := func(msg string) map[string]json.RawMessage {
		t.Helper()
		if msg != "" {
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		return m
	}
	event := func() map[string]any {
		t.Helper()
		var p struct{ Result map[string]any }
		json.Unmarshal(rw("")["params"], &p)
		return p.Result
	}
	sub := string(rw(`{"jsonrpc":"2.0","id":1,"method":"chainHead_v1_follow","params":[true]}`)["result"])
	if ev := event(); ev["event"] != "initialized" || ev["finalizedBlockRuntime"] == nil {
		t.Fatalf("first event %v", ev)
	}
	n.Advance()
	_, hash := n.BestBlock()
	for _, want := range []string{"newBlock", "bestBlockChanged", "finalized"} {
		if ev := event(); ev["event"] != want {
			t.Fatalf("event %v, want %s", ev, want)
		}
	}
	if r := rw(`{"jsonrpc":"2.0","id":2,"method":"chainHead_v1_header","params":[` + sub + `,"` + hash + `"]}`); len(r["result"]) < 100 {
		t.Errorf("header: %s", r["result"])
	}
	r := rw(`{"jsonrpc":"2.0","id":6,"method":"chainHead_v1_call","params":[` + sub + `,"` + hash + `","Metadata_metadata_versions","0x"]}`)
	var started struct{ Result, OperationID string }
	json.Unmarshal(r["result"], &started)
	if started.Result != "started" || started.OperationID == "" {
		t.Fatalf("call: %v", r)
	}
	if ev := event(); ev["event"] != "operationCallDone" || ev["operationId"] != started.OperationID || ev["output"] != "0x080e0000000f000000" {
		t.Errorf("operation event %v", ev)
	}
	if r := rw(`{"jsonrpc":"2.0","id":3,"method":"chainHead_v1_unpin","params":[` + sub + `,"` + hash + `"]}`); string(r["result"]) != "null" {
		t.Errorf("unpin: %v", r)
	}
	if r := rw(`{"jsonrpc":"2.0","id":4,"method":"chainHead_v1_header","params":["nope","` + hash + `"]}`); r["error"] == nil {
		t.Errorf("header of an unknown follow: %v", r)
	}
	if r := rw(`{"jsonrpc":"2.0","id":5,"method":"chainHead_v1_unfollow","params":[` + sub + `]}`); string(r["result"]) != "null" {
		t.Errorf("unfollow: %v", r)
	}
}
