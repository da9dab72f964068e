package wssproxy

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// The deflate benchmarks measure the gateway alone: the node answers each
// call with a canned reply, and the client is raw frames that it counts
// and does not inflate, so the process's CPU time is the gateway's (plus
// the node's copy, the same on every line).
//
//	go test -run '^$' -bench Deflate -benchtime 30x ./wssproxy/

// benchReplies are the node's canned replies, chosen by the call's method.
func benchReplies(b *testing.B) map[string][]byte {
	f, err := os.Open("../internal/rpctest/testdata/metadata-v15-substrate.scale.gz")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]byte{
		"state_getMetadata": []byte(`{"jsonrpc":"2.0","id":1,"result":"0x` + hex.EncodeToString(raw) + `"}`),
		"state_getStorage":  []byte(`{"jsonrpc":"2.0","id":1,"result":"0x0000000000000000010000000000000000ca9a3b00000000000000000000000000"}`),
		"state_getKeys":     []byte(`{"jsonrpc":"2.0","id":1,"result":["` + strings.Repeat(`0x26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9","`, 40) + `"]}`),
	}
}

// cannedNode answers every call with the reply for its method.
func cannedNode(b *testing.B, replies map[string][]byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		ctx := context.Background()
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			for m, reply := range replies {
				if strings.Contains(string(msg), `"`+m+`"`) {
					if c.Write(ctx, websocket.MessageText, reply) != nil {
						return
					}
				}
			}
		}
	}))
	b.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// benchGateway serves a gateway with the default policy, as examples/basic
// runs, and deflate as d says.
func benchGateway(b *testing.B, node string, d *DeflateOptions) (*Proxy, string) {
	p, err := New(node, &Options{Logger: slog.New(slog.DiscardHandler), HealthInterval: -1, Deflate: d})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(p)
	b.Cleanup(func() {
		p.Close()
		srv.Close()
	})
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// frameClient is a client that counts the bytes of frames it reads and
// never inflates them.
type frameClient struct {
	conn net.Conn
	br   *bufio.Reader
	call []byte // a masked frame, sent as it is
}

// dialFrames opens a raw client offering ext, whose call is to method,
// sent compressed (as Chromium sends every message) if zcall.
func dialFrames(b *testing.B, addr, ext, method string, bufSize int, zcall bool) *frameClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, bufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("handshake: %v, %v", resp, err)
	}
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":["0x26aa394eea5630e07c48ae0c9558cef7"]}`)
	h := wsframe.Header{Fin: true, Opcode: wsframe.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}}
	if zcall {
		call, h.RSV = deflateMsg(b, call), rsv1
	}
	h.Length = int64(len(call))
	wsframe.Mask(h.Key, 0, call)
	return &frameClient{conn: conn, br: br, call: append(wsframe.AppendHeader(nil, h), call...)}
}

// roundTrip sends the call and reads the reply's frames, returning the
// bytes they took on the wire.
func (c *frameClient) roundTrip(b *testing.B) int64 {
	if _, err := c.conn.Write(c.call); err != nil {
		b.Fatal(err)
	}
	var wire int64
	for {
		hb, _ := c.br.Peek(2)
		need := 2
		if len(hb) == 2 {
			need = wsframe.HeaderLen(wsframe.Header{Length: map[byte]int64{126: 126, 127: 1 << 16}[hb[1]&0x7f]})
		}
		hb, err := c.br.Peek(need)
		if err != nil {
			b.Fatal(err)
		}
		h, n, err := wsframe.ParseHeader(hb)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.br.Discard(n + int(h.Length)); err != nil {
			b.Fatal(err)
		}
		wire += int64(n) + h.Length
		if h.Fin && !h.Opcode.IsControl() {
			return wire
		}
	}
}

// BenchmarkDeflate compares, in one run, replies sent plain and
// compressed: bytes on the client's wire per message (frames; TLS adds
// about the same to both), the process's CPU per message (the gateway's,
// with the node's copy) and the p50 round-trip latency on loopback.
func BenchmarkDeflate(b *testing.B) {
	replies := benchReplies(b)
	node := cannedNode(b, replies)
	msgs := []struct{ name, method string }{
		{"metadata-1.37MB", "state_getMetadata"},
		{"reply-3KB", "state_getKeys"},
		{"reply-100B", "state_getStorage"},
	}
	lines := []struct {
		name  string
		ext   string
		opts  *DeflateOptions
		zcall bool
	}{
		{"plain", "", nil, false},
		{"deflate", offerChromium, nil, false},
		{"deflate-zcall", offerChromium, nil, true}, // the call compressed too, as Chromium sends it
		{"deflate-level4", offerChromium, &DeflateOptions{Level: 4}, false},
		{"deflate-all", offerChromium, &DeflateOptions{Threshold: -1}, false}, // no threshold: what 100 B would cost
	}
	for _, m := range msgs {
		for _, l := range lines {
			b.Run(m.name+"/"+l.name, func(b *testing.B) {
				_, addr := benchGateway(b, node, l.opts)
				c := dialFrames(b, addr, l.ext, m.method, 64<<10, l.zcall)
				c.roundTrip(b) // warm the pools
				lat := make([]time.Duration, 0, b.N)
				var wire int64
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					wire = c.roundTrip(b)
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
				b.ReportMetric(float64(wire), "wire-B/msg")
			})
		}
	}
}

// BenchmarkDeflateIdleConn reports the heap held per idle connection
// after one compressed reply (3 KB), with compression not negotiated,
// negotiated (the default: nothing held), and with context takeover. The
// figure includes the client (a 4 KiB read buffer) and the node's side;
// the difference between lines is the gateway's.
func BenchmarkDeflateIdleConn(b *testing.B) {
	const n = 100
	node := cannedNode(b, benchReplies(b))
	for _, l := range []struct {
		name string
		ext  string
		opts *DeflateOptions
	}{
		{"plain", "", nil},
		{"deflate", offerChromium, nil},
		{"deflate+takeover", offerChromium, &DeflateOptions{ContextTakeover: true}},
	} {
		b.Run(l.name, func(b *testing.B) {
			for range b.N {
				p, addr := benchGateway(b, node, l.opts)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.GC() // and the pools' victims
				runtime.ReadMemStats(&before)
				conns := make([]*frameClient, n)
				for i := range conns {
					conns[i] = dialFrames(b, addr, l.ext, "state_getKeys", 4<<10, false)
					conns[i].roundTrip(b)
				}
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse))/n, "B/conn")
				for _, c := range conns {
					c.conn.Close()
				}
				p.Close() // waits for its connections, so the next round starts clean
			}
		})
	}
}
