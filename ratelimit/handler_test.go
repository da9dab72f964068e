package ratelimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})

type reply struct {
	Code       int
	RetryAfter string
	Body       string
}

// get sends a GET with an optional X-Forwarded-For and reads the reply.
func get(t *testing.T, c *http.Client, url, xff string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header.Get("Retry-After"), string(body)}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h) // listens on 127.0.0.1:0
	t.Cleanup(ts.Close)
	return ts
}

func TestHandler(t *testing.T) {
	t.Parallel()
	fixed := func() time.Time { return t0 }
	t.Run("30 requests, rate 2 burst 5", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 2, Burst: 5, now: fixed}
		ts := newServer(t, Handler(okHandler, nil, b))
		counts := map[reply]int{}
		for range 30 {
			counts[get(t, ts.Client(), ts.URL, "")]++
		}
		want := map[reply]int{
			{200, "", "ok"}: 5,
			{429, "1", "too many requests: rate limit exceeded\n"}: 25,
		}
		if diff := cmp.Diff(want, counts); diff != "" {
			t.Errorf("replies (-want +got):\n%s", diff)
		}
	})
	t.Run("spoofed X-Forwarded-For from untrusted peer ignored", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 2, Burst: 5, now: fixed}
		keyer := &Keyer{TrustedProxies: mustTrusted(t, "192.0.2.0/24")}
		ts := newServer(t, Handler(okHandler, keyer.Key, b))
		passed := 0
		for i := range 30 {
			if get(t, ts.Client(), ts.URL, "198.51.100."+itoa(i)).Code == 200 {
				passed++
			}
		}
		if passed != 5 {
			t.Errorf("%d of 30 passed with fresh X-Forwarded-For each, want 5", passed)
		}
	})
	t.Run("X-Forwarded-For from trusted peer honoured", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 2, Burst: 5, now: fixed}
		ts := newServer(t, Handler(okHandler, ForwardedFor(mustTrusted(t, "127.0.0.1")...), b))
		passed := map[string]int{}
		for range 10 {
			for xff, client := range map[string]string{
				"198.51.100.1":          "198.51.100.1",
				"198.51.100.1:4444":     "198.51.100.1", // same client, same bucket
				"6.6.6.6, 198.51.100.2": "198.51.100.2",
			} {
				if get(t, ts.Client(), ts.URL, xff).Code == 200 {
					passed[client]++
				}
			}
		}
		want := map[string]int{"198.51.100.1": 5, "198.51.100.2": 5}
		if diff := cmp.Diff(want, passed); diff != "" {
			t.Errorf("passed per header (-want +got):\n%s", diff)
		}
	})
	t.Run("two source addresses do not share a bucket", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 2, Burst: 5, now: fixed}
		ts := newServer(t, Handler(okHandler, RemoteAddr, b))
		passed := map[string]int{}
		for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
			c := clientFrom(t, src)
			for range 10 {
				if get(t, c, ts.URL, "").Code == 200 {
					passed[src]++
				}
			}
		}
		if diff := cmp.Diff(map[string]int{"127.0.0.1": 5, "127.0.0.2": 5}, passed); diff != "" {
			t.Errorf("passed per source (-want +got):\n%s", diff)
		}
	})
	t.Run("Retry-After rounds up", func(t *testing.T) {
		t.Parallel()
		for d, want := range map[time.Duration]string{
			0: "1", time.Nanosecond: "1", time.Second: "1", time.Second + 1: "2",
			90 * time.Minute: "5400", 1<<63 - 1: "31536000",
		} {
			if got := retryAfterSeconds(d); got != want {
				t.Errorf("retryAfterSeconds(%v) = %q, want %q", d, got, want)
			}
		}
	})
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// clientFrom returns a client whose connections come from src, such as
// 127.0.0.2; it skips the test where that address cannot be bound.
func clientFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	probe, err := net.Listen("tcp", src+":0")
	if err != nil {
		t.Skipf("cannot use source address %s: %v", src, err)
	}
	probe.Close()
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// blocker is a handler that signals when a request is inside it and
// holds every request until release is closed.
type blocker struct {
	entered chan string
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan string, 100), release: make(chan struct{})}
}

func (bl *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bl.entered <- r.Header.Get("X-Forwarded-For")
	select {
	case <-bl.release:
	case <-r.Context().Done():
	}
	io.WriteString(w, "done")
}

func TestConnHandler(t *testing.T) {
	t.Parallel()
	conns := &Conns{PerKey: 2, Total: 3}
	bl := newBlocker()
	ts := newServer(t, ConnHandler(bl, ForwardedFor(mustTrusted(t, "127.0.0.1")...), conns))
	c := ts.Client()

	held := make(chan reply, 3)
	for _, xff := range []string{"198.51.100.1", "198.51.100.1", "198.51.100.2"} {
		go func() { held <- get(t, c, ts.URL, xff) }()
		<-bl.entered // no sleeps: wait until the request holds its slot
	}
	if n := conns.InUse(); n != 3 {
		t.Fatalf("InUse = %d, want 3", n)
	}
	got := []reply{
		get(t, c, ts.URL, "198.51.100.1"), // per-key cap
		get(t, c, ts.URL, "198.51.100.3"), // global cap
	}
	want := []reply{
		{429, "5", "too many connections from your address\n"},
		{503, "5", "too many connections: server is full\n"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refusals (-want +got):\n%s", diff)
	}
	close(bl.release)
	for range 3 {
		if r := <-held; r.Code != 200 {
			t.Errorf("held request: %+v", r)
		}
	}
	// A reply is complete only after ServeHTTP returned, so slots are free.
	if n := conns.InUse(); n != 0 {
		t.Errorf("InUse = %d after all returned, want 0", n)
	}
	if r := get(t, c, ts.URL, "198.51.100.1"); r.Code != 200 {
		t.Errorf("after release: %+v", r)
	}
}

func TestConnHandlerHijacked(t *testing.T) {
	t.Parallel()
	conns := &Conns{PerKey: 1}
	served := make(chan struct{}, 10)
	hijacker := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		io.Copy(io.Discard, brw) // until the client hangs up, as a proxy splices
	})
	h := ConnHandler(hijacker, nil, conns)
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		served <- struct{}{} // after ConnHandler released the slot
	}))

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if n := conns.Count("127.0.0.1"); n != 1 {
		t.Errorf("Count during hijacked conn = %d, want 1", n)
	}
	if r := get(t, ts.Client(), ts.URL, ""); r.Code != 429 {
		t.Errorf("second conn while first open: %+v, want 429", r)
	}
	<-served // the refused request
	conn.Close()
	<-served
	if n := conns.InUse(); n != 0 {
		t.Errorf("InUse after hang-up = %d, want 0", n)
	}
}

type errConnLimiter struct{}

func (errConnLimiter) Acquire(string) (func(), error) { return nil, errors.New("boom") }

func TestConnHandlerOtherError(t *testing.T) {
	t.Parallel()
	ts := newServer(t, ConnHandler(okHandler, nil, errConnLimiter{}))
	if r := get(t, ts.Client(), ts.URL, ""); r.Code != 500 || strings.Contains(r.Body, "boom") {
		t.Errorf("reply %+v, want 500 without internals", r)
	}
}

func TestHandlerNilLimiterPanics(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"Handler":     func() { Handler(okHandler, nil, nil) },
		"ConnHandler": func() { ConnHandler(okHandler, nil, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
