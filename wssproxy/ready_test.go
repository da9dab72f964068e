package wssproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/rpctest"
)

// TestHealthAllUnhealthy: with every node unhealthy the gateway serves but
// says so (ReadyHandler 503 with the reasons); with StrictHealth it refuses
// WebSockets and HTTP requests with 503, Retry-After and the reasons.
func TestHealthAllUnhealthy(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "serving", true: "strict"}[strict], func(t *testing.T) {
			t.Parallel()
			node := startNode(t)
			clock := newTestClock()
			p, wsURL, logs := startHealthPool(t, []string{node.URL()}, clock, &Options{StrictHealth: strict})
			ready := httptest.NewServer(p.ReadyHandler())
			t.Cleanup(ready.Close)
			p.checkAll()
			waitHeads(t, p, 0, 0, 0)
			clock.Advance(2 * time.Minute)
			p.checkAll()
			wantState(t, p, 0, StateStalled, "stalled at #0 for 2m")

			code, st := getReady(t, ready.URL)
			if code != http.StatusServiceUnavailable || st.Ready || st.Serving == strict || st.Nodes[0].Reason != "stalled at #0 for 2m" {
				t.Errorf("ready: %d %+v, want 503 with the reason, serving %v", code, st, !strict)
			}
			httpURL := "http" + strings.TrimPrefix(wsURL, "ws")
			if !strict {
				chainCall(t, testCtx(t), dial(t, wsURL, nil), 1)
				if n := logs.count("wssproxy: every node is unhealthy; still serving"); n != 1 {
					t.Errorf("pool down logged %d times, want once", n)
				}
				return
			}
			_, resp, err := websocket.Dial(testCtx(t), wsURL, nil)
			if err == nil {
				t.Fatal("WebSocket accepted with every node unhealthy and StrictHealth")
			}
			wantRefusal(t, "WebSocket", resp)
			resp, err = http.Post(httpURL, "application/json", strings.NewReader(callJSON(1, "system_chain")))
			if err != nil {
				t.Fatal(err)
			}
			wantRefusal(t, "POST", resp)
			if n := logs.count("wssproxy: every node is unhealthy; refusing new connections (StrictHealth)"); n != 1 {
				t.Errorf("pool down logged %d times, want once", n)
			}

			node.Advance()
			waitHeads(t, p, 0, 1, 1)
			p.checkAll()
			chainCall(t, testCtx(t), dial(t, wsURL, nil), 2)
		})
	}
}

func wantRefusal(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: no response", what)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3600" ||
		!strings.Contains(string(body), "every node is unhealthy: ") || !strings.Contains(string(body), ": stalled at #0 for 2m") {
		t.Errorf("%s: %d Retry-After %q %q, want 503 naming the stall", what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestHealthNodeMode: each check probes whether the node serves unsafe
// methods; ReadyHandler shows it per node, and a node that serves them is
// warned about once per change.
func TestHealthNodeMode(t *testing.T) {
	t.Parallel()
	safe, err := rpctest.Start(&rpctest.Options{SafeRPCMethods: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { safe.Close() })
	unsafe := startNode(t)
	p, _, logs := startHealthPool(t, []string{safe.URL(), unsafe.URL()}, newTestClock(), nil)
	ready := httptest.NewServer(p.ReadyHandler())
	t.Cleanup(ready.Close)
	p.checkAll()
	_, st := getReady(t, ready.URL)
	if st.Nodes[0].UnsafeMethods != UnsafeRefused || st.Nodes[1].UnsafeMethods != UnsafeServed {
		t.Errorf("ready nodes %+v, want unsafe methods refused by node 0, served by node 1", st.Nodes)
	}
	const warning = "wssproxy: node serves unsafe methods to the gateway; run it with --rpc-methods safe"
	p.checkAll()
	if n := logs.count(warning, "upstream", p.backends[1].host); n != 1 {
		t.Errorf("warning for the unsafe node logged %d times, want once", n)
	}
	if n := logs.count(warning, "upstream", p.backends[0].host); n != 0 {
		t.Errorf("warning for the safe node logged %d times, want never", n)
	}

	safe.SetSafeRPCMethods(false) // restarted without --rpc-methods safe
	p.checkAll()
	if n := logs.count(warning, "upstream", p.backends[0].host); n != 1 {
		t.Errorf("warning after node 0 turned unsafe logged %d times, want once", n)
	}
	if got := p.Nodes()[0].UnsafeMethods; got != UnsafeServed {
		t.Errorf("node 0 unsafe methods %q after the switch, want served", got)
	}
	for _, n := range p.Nodes() {
		if !n.Healthy {
			t.Errorf("node %+v unhealthy; the mode does not change health", n)
		}
	}
}
