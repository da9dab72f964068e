package wssproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Benchmarks compare the cost of a message through the proxy with the same
// message sent straight to the upstream, on real loopback sockets. All
// three parties run in this process, so ns/msg and allocs/op include the
// client's and the upstream's work; the proxy's own cost is the difference
// between the "proxy" and "direct" lines of one run.
//
//	go test -run '^$' -bench . -benchmem ./wssproxy/

// benchUpstream echoes (mode "echo") or swallows ("sink") messages, with one
// reused buffer per connection, so it costs the same in every line.
func benchUpstream(b *testing.B, mode string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		var buf []byte // grown on demand, so idle connections hold none
		ctx := context.Background()
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			if buf, err = readAll(rd, buf[:0]); err != nil {
				return
			}
			n := len(buf)
			if mode == "echo" {
				if c.Write(ctx, typ, buf[:n]) != nil {
					return
				}
			}
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// benchTarget returns the URL to dial for a line: the upstream itself, or
// a proxy in front of it with the given policy.
func benchTarget(b *testing.B, upstream *httptest.Server, line string) string {
	up := "ws" + strings.TrimPrefix(upstream.URL, "http")
	if line == "direct" {
		return up
	}
	_, srv := benchLineProxy(b, up, line, true)
	srv.Start()
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// benchProxy returns a proxy for a line in front of upstream URL up, and
// its server, not yet started, on NewListener if hook is set.
func benchLineProxy(b *testing.B, up, line string, hook bool) (*Proxy, *httptest.Server) {
	opts := &Options{
		Logger:         slog.New(slog.DiscardHandler),
		HealthInterval: -1,
		ReadLimit:      4 << 20,
		Policy:         AllowAll(),
	}
	if line == "proxy+warm" { // node connections dialed ahead (NodeWarmConns)
		opts.NodeWarmConns = 4
	}
	if strings.HasPrefix(line, "proxy+inspect") { // the default policy plus message limits, as examples/basic runs
		opts.Policy = DefaultPolicy()
		opts.MessageRate, opts.MessageBurst = 1e9, 1e9
		opts.MaxSubscriptions = 1024
	}
	p, err := New(up, opts)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	if hook {
		srv.Listener = NewListener(srv.Listener) // as examples/basic serves
	}
	b.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return p, srv
}

// BenchmarkPipelined: a client keeps 64 calls of 100 B in flight over
// TLS, as loadtest's pipe mode does, and reads the echoes. crypto/tls
// returns one record (here one call) per Read; node-writes/msg is how
// many writes the proxy made to the node per call. The "plain-listener"
// lines serve without NewListener, so the relay cannot tell when the
// client's socket runs dry and writes after every read.
func BenchmarkPipelined(b *testing.B) {
	const window = 64
	for _, line := range []string{"proxy", "proxy+inspect", "proxy/plain-listener", "proxy+inspect/plain-listener"} {
		b.Run(line, func(b *testing.B) {
			up := benchUpstream(b, "echo")
			p, srv := benchLineProxy(b, "ws"+strings.TrimPrefix(up.URL, "http"), line, !strings.HasSuffix(line, "/plain-listener"))
			srv.StartTLS()
			c, _, err := websocket.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https"), &websocket.DialOptions{
				HTTPClient: srv.Client(), CompressionMode: websocket.CompressionDisabled})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.CloseNow() })
			msg := rpcMessage(100)
			ctx := context.Background()
			slots := make(chan struct{}, window)
			errc := make(chan error, 1)
			b.SetBytes(int64(2 * len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for range b.N {
					slots <- struct{}{}
					if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			buf := make([]byte, 128)
			for range b.N {
				if err := readInto(ctx, c, buf); err != nil {
					b.Fatal(err)
				}
				<-slots
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			var writes, msgs int64
			p.mu.Lock()
			for pc := range p.conns {
				writes += pc.stats[toNode].writeDone.Load()
				msgs += pc.stats[toNode].msgs.Load()
			}
			p.mu.Unlock()
			b.ReportMetric(float64(writes)/float64(max(msgs, 1)), "node-writes/msg")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
		})
	}
}

// rpcMessage is a JSON-RPC call padded to size bytes.
func rpcMessage(size int) []byte {
	head := `{"id":1,"jsonrpc":"2.0","method":"bench_echo","params":["`
	tail := `"]}`
	pad := max(0, size-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

var benchSizes = []struct {
	name string
	size int
}{{"100B", 100}, {"64KiB", 64 << 10}, {"1.4MB", 1400 << 10}}

var benchLines = []string{"direct", "proxy", "proxy+inspect"}

// BenchmarkRoundTrip: lockstep request and reply on one connection.
func BenchmarkRoundTrip(b *testing.B) {
	for _, sz := range benchSizes {
		for _, line := range benchLines {
			b.Run(sz.name+"/"+line, func(b *testing.B) {
				up := benchUpstream(b, "echo")
				c := benchDial(b, benchTarget(b, up, line))
				msg := rpcMessage(sz.size)
				buf := make([]byte, sz.size+1)
				ctx := context.Background()
				b.SetBytes(int64(2 * len(msg)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
						b.Fatal(err)
					}
					if err := readInto(ctx, c, buf); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/msg")
			})
		}
	}
}

// BenchmarkPipe: one direction at full speed, client to node ("up") or
// node to client ("down", the upstream echoing a stream the client sends
// while another goroutine reads).
func BenchmarkPipe(b *testing.B) {
	for _, sz := range benchSizes[:2] {
		for _, line := range benchLines {
			b.Run(sz.name+"/up/"+line, func(b *testing.B) {
				up := benchUpstream(b, "sink")
				c := benchDial(b, benchTarget(b, up, line))
				msg := rpcMessage(sz.size)
				ctx := context.Background()
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
						b.Fatal(err)
					}
				}
				// a final echo-less round trip is not possible with a sink;
				// the socket buffers hold at most a few MB of the tail
			})
		}
	}
}

// readAll reads r to its end into buf, growing it.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func readInto(ctx context.Context, c *websocket.Conn, buf []byte) error {
	_, r, err := c.Reader(ctx)
	if err != nil {
		return err
	}
	for {
		if _, err := r.Read(buf); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func benchDial(b *testing.B, url string) *websocket.Conn {
	c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		b.Fatal(err)
	}
	c.SetReadLimit(-1)
	b.Cleanup(func() { c.CloseNow() })
	return c
}

// BenchmarkIdleConn reports the heap held per idle connection: through
// the proxy (client, proxy both ways, upstream) minus direct (client,
// upstream) is what the proxy holds. The proxy's connections are measured
// once idle for longer than parkAfter.
func BenchmarkIdleConn(b *testing.B) {
	const n = 500
	for _, line := range benchLines {
		b.Run(line, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				up := benchUpstream(b, "echo")
				url := benchTarget(b, up, line)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				g0 := runtime.NumGoroutine()
				conns := make([]*websocket.Conn, 0, n)
				for range n {
					c, _, err := websocket.Dial(context.Background(), url, nil)
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				// one round trip on each, so every party is past its handshake
				ctx := context.Background()
				for _, c := range conns {
					c.Write(ctx, websocket.MessageText, rpcMessage(100))
					c.Read(ctx)
				}
				if line != "direct" {
					time.Sleep(parkAfter + parkAfter/2) // idle: the copiers park (park.go)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				diff := func(a, b uint64) float64 { return float64(int64(a-b)) / n }
				b.ReportMetric(diff(after.HeapInuse+after.StackInuse, before.HeapInuse+before.StackInuse), "B/conn")
				b.ReportMetric(diff(after.StackInuse, before.StackInuse), "stack-B/conn")
				b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
				for _, c := range conns {
					c.CloseNow()
				}
				// the next round's "before" without this one's goroutines
				for end := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > g0 && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// BenchmarkHandshake measures a WebSocket handshake through the proxy
// (client upgrade, node dial and upgrade, relay start) and its close,
// without TLS, so that the proxy's own work in the upgrade path shows.
// proxy+warm takes node connections dialed ahead (NodeWarmConns): their
// dials, made meanwhile, count too.
func BenchmarkHandshake(b *testing.B) {
	for _, line := range append(benchLines, "proxy+warm") {
		b.Run(line, func(b *testing.B) {
			url := benchTarget(b, benchUpstream(b, "echo"), line)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, _, err := websocket.Dial(ctx, url, nil)
				if err != nil {
					b.Fatal(err)
				}
				c.CloseNow()
			}
		})
	}
}
