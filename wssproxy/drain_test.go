package wssproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// lockstepClient makes test_echo calls one at a time, each with the next
// sequence number, until its connection closes, and records what it saw.
type lockstepClient struct {
	id      int
	sent    int   // requests written
	replies int   // replies read, each matching its request
	end     error // the error that ended the loop: the close frame
	bad     error // a reply that did not match, if any
}

func (lc *lockstepClient) run(ctx context.Context, c *websocket.Conn, warm *sync.WaitGroup) {
	const warmup = 10 // calls before the client counts as under load
	defer func() {
		if lc.replies < warmup {
			warm.Done()
		}
	}()
	for seq := 0; ; seq++ {
		req := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"test_echo","params":[%d,%d]}`, seq, lc.id, seq)
		if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
			_, _, lc.end = c.Read(ctx) // the write lost a race with the close: report the close
			return
		}
		lc.sent++
		_, msg, err := c.Read(ctx)
		if err != nil {
			lc.end = err
			return
		}
		var r rpcReply
		want := fmt.Sprintf("[%d,%d]", lc.id, seq)
		if json.Unmarshal(msg, &r) != nil || string(r.ID) != fmt.Sprint(seq) || string(r.Result) != want {
			lc.bad = fmt.Errorf("request %d: reply %s, want id %d and result %s", seq, msg, seq, want)
			return
		}
		lc.replies++
		if lc.replies == warmup {
			warm.Done()
		}
	}
}

// TestShutdownUnderLoad: Shutdown while clients make calls as fast as they
// can loses nothing. Every client ends with 1001, every reply matches its
// request, and every request written before the close frame arrived
// reaches the node. In lockstep a client has at most one call in flight,
// so it has a reply for each request but perhaps the last.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		policy *Policy
	}{
		{"splice", AllowAll()},
		{"inspect", DefaultPolicy()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := startNode(t)
			p, url := startProxy(t, node.URL(), &Options{Policy: tt.policy})
			ctx := testCtx(t)

			const n = 20
			clients := make([]*lockstepClient, n)
			var warm, done sync.WaitGroup
			warm.Add(n)
			for i := range clients {
				c := dial(t, url, nil)
				clients[i] = &lockstepClient{id: i}
				done.Go(func() { clients[i].run(ctx, c, &warm) })
			}
			warm.Wait()

			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			if err := p.Shutdown(sctx); err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
			t.Logf("Shutdown took %v", time.Since(start))
			done.Wait()

			total, replies := 0, 0
			for _, lc := range clients {
				total += lc.sent
				replies += lc.replies
				if lc.bad != nil {
					t.Errorf("client %d: %v", lc.id, lc.bad)
				}
				var ce websocket.CloseError
				if !errors.As(lc.end, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != reasonShutdown {
					t.Errorf("client %d ended with %v, want 1001 %q", lc.id, lc.end, reasonShutdown)
				}
				if lc.replies != lc.sent && lc.replies != lc.sent-1 {
					t.Errorf("client %d: %d replies to %d requests", lc.id, lc.replies, lc.sent)
				}
			}
			// Once the node has closed its side it has read everything the
			// gateway forwarded.
			waitFor(t, "node connections closed", func() bool { return node.Conns() == 0 })
			seen := 0
			for _, m := range node.Seen() {
				if m == "test_echo" {
					seen++
				}
			}
			switch {
			case seen > total:
				t.Errorf("node saw %d calls, clients sent %d", seen, total)
			case seen < total:
				t.Errorf("drain lost %d calls: node saw %d calls, clients sent %d", total-seen, seen, total)
			}
			t.Logf("%d clients sent %d calls, got %d replies", n, total, replies)

			_, resp, err := websocket.Dial(ctx, url, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("handshake after Shutdown: %v %v, want 503", resp, err)
			}
			if p.Conns() != 0 {
				t.Errorf("proxy holds %d connections after Shutdown", p.Conns())
			}
		})
	}
}

// TestShutdownDeadline: a client that never reads never finishes the close
// handshake; Shutdown gives up when its context ends, drops everything and
// returns the context's error. A well-behaved client beside it still gets
// its 1001.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	p, url := startProxy(t, node.URL(), nil)
	ctx := testCtx(t)

	good := dial(t, url, nil)
	chainCall(t, ctx, good, 1)
	goodEnd := make(chan error, 1)
	go func() {
		_, _, err := good.Read(ctx)
		goodEnd <- err
	}()
	stubborn := rawUpgrade(t, url)
	waitFor(t, "both connections spliced", func() bool { return node.Conns() == 2 })

	const deadline = 300 * time.Millisecond
	sctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := p.Shutdown(sctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	t.Logf("Shutdown took %v", took)
	if took < deadline {
		t.Errorf("Shutdown took %v, less than its %v deadline", took, deadline)
	}
	late := took > deadline+2*time.Second // checked last: a known bug
	if p.Conns() != 0 {
		t.Errorf("proxy holds %d connections after Shutdown", p.Conns())
	}
	wantClose(t, "well-behaved client", <-goodEnd, websocket.StatusGoingAway)

	// The stubborn client finds a close frame (1001) in its socket, then
	// the end of the connection.
	stubborn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(stubborn)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("stubborn client: %v after %q; want the connection closed", err, rest)
	}
	want := []byte{0x88, byte(2 + len(reasonShutdown)), 0x03, 0xe9} // FIN+close, length, 1001
	if !slices.Equal(rest[:min(len(rest), 4)], want) {
		t.Errorf("stubborn client read % x, want a 1001 close frame", rest)
	}
	waitFor(t, "node connections closed", func() bool { return node.Conns() == 0 })
	if late {
		t.Errorf("Shutdown took %v with a %v deadline", took, deadline)
	}
}

// rawUpgrade opens a WebSocket to url by hand and returns the TCP
// connection, which the test never reads until it chooses to.
func rawUpgrade(t *testing.T, url string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(url, "ws://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: %s", resp.Status)
	}
	if br.Buffered() != 0 {
		t.Fatalf("raw upgrade: %d unexpected bytes after the 101", br.Buffered())
	}
	c.SetReadDeadline(time.Time{})
	return c
}
