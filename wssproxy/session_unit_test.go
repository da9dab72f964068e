package wssproxy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// testSession is a session of a proxy with a subscription cap, driven by
// hand: the test plays the node.
func testSession(t *testing.T, maxSubs int) *session {
	t.Helper()
	p, err := New("ws://127.0.0.1:1", &Options{MaxSubscriptions: maxSubs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.newSession("test")
}

// forward sends a client message and returns the gateway id the node sees
// for the call (raw JSON).
func (s *session) forwardCall(t *testing.T, msg string) string {
	t.Helper()
	v := s.clientMessage(context.Background(), []byte(msg))
	if v.forward == nil || v.reply != nil {
		t.Fatalf("%s: verdict %+v, want forwarded alone", msg, v)
	}
	calls, _, err := jsonrpc.Parse(v.forward, maxBatch, nil)
	if err != nil || len(calls) != 1 {
		t.Fatalf("forwarded %s: %v", v.forward, err)
	}
	if _, own := s.ownID(calls[0].ID); !own {
		t.Fatalf("forwarded %s under the client's id, want a gateway id", v.forward)
	}
	return string(calls[0].ID)
}

func (s *session) reply(t *testing.T, gwID, result string) string {
	t.Helper()
	return string(s.nodeMessage([]byte(`{"jsonrpc":"2.0","id":` + gwID + `,"result":` + result + `}`)))
}

func TestSessionSubscriptionEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		subscribe string
		end       func(t *testing.T, s *session, subID string)
		wantLeft  int
	}{
		{"unsubscribe answered true", "chain_subscribeNewHeads", func(t *testing.T, s *session, id string) {
			s.reply(t, s.forwardCall(t, `{"jsonrpc":"2.0","id":9,"method":"chain_unsubscribeNewHeads","params":[`+id+`]}`), "true")
		}, 0},
		{"unsubscribe answered null", "chain_subscribeNewHeads", func(t *testing.T, s *session, id string) {
			s.reply(t, s.forwardCall(t, `{"jsonrpc":"2.0","id":9,"method":"unsubscribe_newHead","params":[`+id+`]}`), "null")
		}, 0},
		{"unsubscribe answered false: the node holds nothing", "state_subscribeRuntimeVersion", func(t *testing.T, s *session, id string) {
			s.reply(t, s.forwardCall(t, `{"jsonrpc":"2.0","id":9,"method":"chain_unsubscribeRuntimeVersion","params":{"subscription":`+id+`}}`), "false")
		}, 0},
		{"unsubscribe answered with an error keeps it", "chain_subscribeNewHeads", func(t *testing.T, s *session, id string) {
			gw := s.forwardCall(t, `{"jsonrpc":"2.0","id":9,"method":"chain_unsubscribeNewHeads","params":[`+id+`]}`)
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","id":` + gw + `,"error":{"code":-32603,"message":"x"}}`))
		}, 1},
		{"unsubscribe of another kind keeps it", "chain_subscribeNewHeads", func(t *testing.T, s *session, id string) {
			s.reply(t, s.forwardCall(t, `{"jsonrpc":"2.0","id":9,"method":"state_unsubscribeStorage","params":[`+id+`]}`), "false")
		}, 1},
		{"final transaction status", "author_submitAndWatchExtrinsic", func(t *testing.T, s *session, id string) {
			for _, st := range []string{`"ready"`, `{"broadcast":["p"]}`, `{"inBlock":"0x01"}`, `{"retracted":"0x01"}`, `{"inBlock":"0x02"}`} {
				s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"author_extrinsicUpdate","params":{"subscription":` + id + `,"result":` + st + `}}`))
			}
			if n := s.subscriptions(); n != 1 {
				t.Fatalf("%d subscriptions before the final status, want 1", n)
			}
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"author_extrinsicUpdate","params":{"result":{"finalized":"0x02"},"subscription":` + id + `}}`))
		}, 0},
		{"dropped transaction", "author_submitAndWatchExtrinsic", func(t *testing.T, s *session, id string) {
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"author_extrinsicUpdate","params":{"subscription":` + id + `,"result":"dropped"}}`))
		}, 0},
		{"new API transaction finalized", "transactionWatch_v1_submitAndWatch", func(t *testing.T, s *session, id string) {
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"transactionWatch_v1_watchEvent","params":{"subscription":` + id + `,"result":{"event":"bestChainBlockIncluded","block":null}}}`))
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"transactionWatch_v1_watchEvent","params":{"subscription":` + id + `,"result":{"event":"invalid","error":"x"}}}`))
		}, 0},
		{"follow stopped", "chainHead_v1_follow", func(t *testing.T, s *session, id string) {
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"chainHead_v1_followEvent","params":{"subscription":` + id + `,"result":{"event":"stop"}}}`))
		}, 0},
		{"a stop for another subscription's id ends nothing", "chain_subscribeNewHeads", func(t *testing.T, s *session, id string) {
			s.nodeMessage([]byte(`{"jsonrpc":"2.0","method":"chainHead_v1_followEvent","params":{"subscription":` + id + `,"result":{"event":"stop"}}}`))
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSession(t, 2)
			gw := s.forwardCall(t, `{"jsonrpc":"2.0","id":"\u0061","method":"`+tt.subscribe+`","params":["0x00"]}`)
			if got := s.reply(t, gw, `"SUB1"`); !strings.Contains(got, `"id":"\u0061"`) {
				t.Fatalf("reply to the client %s, want its own id", got)
			}
			tt.end(t, s, `"SUB1"`)
			if n := s.subscriptions(); n != tt.wantLeft {
				t.Errorf("%d subscriptions left, want %d", n, tt.wantLeft)
			}
			if s.watchNode() != (tt.wantLeft > 0 && subscribeOf(tt.subscribe).last != nil) {
				t.Errorf("watchNode() = %v with %d subscriptions of %s left", s.watchNode(), tt.wantLeft, tt.subscribe)
			}
		})
	}
}

// TestSessionBounds: tracked calls and held bytes stop at their caps, and
// ids the node never answers are never tracked.
func TestSessionBounds(t *testing.T) {
	t.Parallel()
	s := testSession(t, MaxTrackedCalls+10)
	for i := range MaxTrackedCalls {
		s.forwardCall(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"chain_subscribeNewHeads"}`, i))
	}
	v := s.clientMessage(context.Background(), []byte(`{"jsonrpc":"2.0","id":"over","method":"chain_subscribeNewHeads"}`))
	if v.forward != nil || !strings.Contains(string(v.reply), "-32005") || !strings.Contains(string(v.reply), `"id":"over"`) {
		t.Errorf("call %d: %+v, want a -32005 refusal with its id", MaxTrackedCalls+1, v)
	}
	for _, id := range []string{"-1", "1.5", "1e400", "18446744073709551616", "true", "[1]", "{}"} {
		msg := `{"jsonrpc":"2.0","id":` + id + `,"method":"chain_subscribeAllHeads"}`
		v := s.clientMessage(context.Background(), []byte(msg))
		if string(v.forward) != msg {
			t.Errorf("id %s: forwarded %q, want the notification as it is", id, v.forward)
		}
	}
	if n := len(s.pending); n != MaxTrackedCalls {
		t.Errorf("%d tracked calls, want %d", n, MaxTrackedCalls)
	}
	long := `"` + strings.Repeat("x", MaxIDLength) + `"`
	v = s.clientMessage(context.Background(), []byte(`{"jsonrpc":"2.0","id":`+long+`,"method":"system_chain"}`))
	if v.forward != nil || !strings.Contains(string(v.reply), `"id":null`) {
		t.Errorf("an id over MaxIDLength: %+v, want refused with a null id", v)
	}
}

// TestSessionAllocs: judging an ordinary call, forwarded as it is, costs
// no allocation.
func TestSessionAllocs(t *testing.T) {
	for _, maxSubs := range []int{0, 1024} { // without and with a subscription cap to keep
		s := testSession(t, maxSubs)
		for _, msg := range []string{
			`{"jsonrpc":"2.0","id":"0f3a-17","method":"state_getStorage","params":["0x26aa394eea5630e07c48ae0c9558cef7"]}`,
			`{"jsonrpc":"2.0","id":17,"method":"chain_getBlock","params":[]}`,
		} {
			m := []byte(msg)
			if n := testing.AllocsPerRun(100, func() {
				if v := s.clientMessage(context.Background(), m); v.forward == nil {
					t.Fatal("not forwarded")
				}
			}); n != 0 {
				t.Errorf("MaxSubscriptions %d, %s: %v allocations per message, want 0", maxSubs, msg, n)
			}
		}
	}
}
