package wssproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// readFrame reads one unmasked server frame with a short payload.
func readFrame(t *testing.T, br *bufio.Reader) (opcode byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7f > 125 {
		t.Fatalf("unexpected frame header % x", h)
	}
	payload = make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, payload
}

// TestShutdownTwice: a second Shutdown while the first is draining writes
// no second close frame (RFC 6455 forbids any frame after a close), both
// return once the connection is over, and the close is logged and counted
// once, as the gateway's, with the code it sent.
func TestShutdownTwice(t *testing.T) {
	t.Parallel()
	node := newEchoNode(t, nil)
	logger, logs := captureLogs(t)
	var mu sync.Mutex
	var ends []ConnEnd
	var drains atomic.Int32
	p, url := startProxy(t, node.URL(), &Options{Logger: logger, Metrics: &Metrics{ConnClosed: func(_ string, e ConnEnd) {
		mu.Lock()
		ends = append(ends, e)
		mu.Unlock()
	}}})
	p.testHookDrain = func() { drains.Add(1) }

	c := rawUpgrade(t, url)
	br := bufio.NewReader(c)
	c.Write(maskedTextFrame("hello"))
	if got := readTextFrame(t, br); got != "hello" {
		t.Fatalf("echo %q", got)
	}

	ctx := testCtx(t)
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- p.Shutdown(ctx) }()
	op, payload := readFrame(t, br)
	if op != 0x8 || len(payload) < 2 || payload[0] != 0x03 || payload[1] != 0xe9 {
		t.Fatalf("first frame after Shutdown: opcode %x % x, want close 1001", op, payload)
	}
	go func() { second <- p.Shutdown(ctx) }()
	waitFor(t, "the second Shutdown to drain", func() bool { return drains.Load() == 2 })

	// Answer the close, as a client does, and read the rest: nothing.
	c.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("after the close: %v", err)
	}
	if len(rest) != 0 {
		t.Errorf("client got % x after the close frame, want nothing", rest)
	}
	if err := <-first; err != nil {
		t.Errorf("first Shutdown = %v", err)
	}
	if err := <-second; !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Shutdown = %v, want net.ErrClosed", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]ConnEnd{{ClosedBy: "gateway", ClientCode: 1001}}, ends,
		cmpopts.IgnoreFields(ConnEnd{}, "Duration")); diff != "" {
		t.Errorf("ConnClosed (-want +got):\n%s", diff)
	}
	lines := logs.lines("connection closed")
	if len(lines) != 1 {
		t.Fatalf("%d connection closed lines, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, want := range []string{"closed_by=gateway", "client_code=1001", `client_reason="` + reasonShutdown + `"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line lacks %s: %s", want, lines[0])
		}
	}
	if strings.Contains(lines[0], "error=") {
		t.Errorf("a shutdown close logs an error: %s", lines[0])
	}
}

// TestCloseLogs: each way a connection ends is logged in one line, with
// closed_by naming who ended it and error= only when something failed.
func TestCloseLogs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		end      func(t *testing.T, p *Proxy, c *websocket.Conn)
		want     []string
		hasError bool
	}{{
		name: "client closes normally",
		end:  func(t *testing.T, p *Proxy, c *websocket.Conn) { c.Close(websocket.StatusNormalClosure, "bye") },
		want: []string{"closed_by=client", "node_code=1000", `node_reason=bye`},
	}, {
		name: "client vanishes",
		end:  func(t *testing.T, p *Proxy, c *websocket.Conn) { c.CloseNow() },
		want: []string{"closed_by=client", `node_reason="client went away"`}, hasError: true,
	}, {
		name: "shutdown",
		end: func(t *testing.T, p *Proxy, c *websocket.Conn) {
			errc := make(chan error, 1)
			go func() { errc <- p.Shutdown(context.Background()) }()
			_, _, err := c.Read(testCtx(t))
			wantClose(t, "client", err, websocket.StatusGoingAway)
			if err := <-errc; err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		},
		want: []string{"closed_by=gateway", "client_code=1001", "node_code=1001"},
	}, {
		name: "node closes",
		end: func(t *testing.T, p *Proxy, c *websocket.Conn) {
			c.Write(testCtx(t), websocket.MessageText, []byte("close 4000 done"))
			_, _, err := c.Read(testCtx(t))
			wantClose(t, "client", err, 4000)
		},
		want: []string{"closed_by=node", "client_code=4000", "client_reason=done"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newEchoNode(t, nil)
			logger, logs := captureLogs(t)
			p, url := startProxy(t, node.URL(), &Options{Logger: logger})
			c := dial(t, url, nil)
			ctx := testCtx(t)
			c.Write(ctx, websocket.MessageText, []byte("hi"))
			if _, _, err := c.Read(ctx); err != nil {
				t.Fatal(err)
			}
			tt.end(t, p, c)
			waitFor(t, "the connection to end", func() bool { return p.Conns() == 0 })
			lines := logs.lines("connection closed")
			if len(lines) != 1 {
				t.Fatalf("%d connection closed lines, want 1:\n%s", len(lines), logs)
			}
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("log line lacks %s: %s", w, lines[0])
				}
			}
			if got := strings.Contains(lines[0], "error="); got != tt.hasError {
				t.Errorf("error= logged: %v, want %v: %s", got, tt.hasError, lines[0])
			}
		})
	}
}
