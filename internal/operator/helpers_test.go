package operator

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// logBuffer collects a gateway's logs and lets tests wait for a line.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the logs hold n occurrences of s.
func (l *logBuffer) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		got, ch := strings.Count(l.b.String(), s), l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no %d× %q in the logs after 60s:\n%s", n, s, l.String())
		}
	}
}

// running is a gateway started by startGateway.
type running struct {
	Addrs
	logs *logBuffer
	out  *bytes.Buffer
	stop func() error
}

// startGateway runs p.Run with args until the test ends.
func startGateway(t *testing.T, p *Program, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	r := &running{logs: newLogBuffer(), out: new(bytes.Buffer)}
	go func() { done <- p.Run(ctx, args, io.Discard, r.logs, ready) }()
	select {
	case r.Addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v\n%s", err, r.logs)
	case <-time.After(120 * time.Second):
		cancel()
		t.Fatalf("gateway did not start:\n%s", r.logs)
	}
	stopped := false
	r.stop = func() error {
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("Run did not return after cancel")
		}
	}
	t.Cleanup(func() {
		if !stopped {
			r.stop()
		}
		if t.Failed() {
			t.Logf("gateway logs:\n%s", r.logs)
		}
	})
	return r
}

// dialWSS opens a WebSocket through the gateway.
func dialWSS(t *testing.T, addr string, conf *tls.Config) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	c, res, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, res, err
}

// call sends one request and returns the reply.
func call(t *testing.T, c *websocket.Conn, req string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

// get fetches url and returns the body.
func get(t *testing.T, client *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}
