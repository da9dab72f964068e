package wssproxy

// Hostile clients, inside the stream: what they send after a valid
// handshake. Helpers are in hostile_test.go.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHostileClientNeverReads: a node floods a client that never reads.
// The backlog must stay in the kernel's socket buffers, not the gateway's
// heap, and the gateway must drop the client (its pings go unanswered, or
// its writes stall for WriteTimeout) and close the node with 1001.
func TestHostileClientNeverReads(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"pings and write timeout", Options{WriteTimeout: 500 * time.Millisecond, PingInterval: 200 * time.Millisecond}},
		{"write timeout alone", Options{WriteTimeout: 500 * time.Millisecond, PingInterval: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, func(n *recNode) { n.flood = 64 << 10 })
			p, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			c := dialRaw(t, addr, "")
			start := time.Now()
			peak := int64(0)
			for p.Conns() > 0 {
				if time.Since(start) > 10*time.Second {
					t.Fatal("the gateway kept a client that never reads for 10s")
				}
				peak = max(peak, int64(takeFootprint().heap)-int64(fp.heap))
				time.Sleep(20 * time.Millisecond)
			}
			dropped := time.Since(start)
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			backlog, err := io.Copy(io.Discard, c.br)
			if !isClosed(err) {
				t.Errorf("client's socket after the drop: %v, want EOF or reset", err)
			}
			flooded := node.flooded.Load()
			t.Logf("dropped after %v; node flooded %d KiB, client's socket held %d KiB; gateway heap peak growth %d KiB",
				dropped.Round(time.Millisecond), flooded>>10, backlog>>10, peak>>10)
			if dropped > 8*time.Second { // about WriteTimeout; generous for loaded CI machines
				t.Errorf("client dropped after %v, want about WriteTimeout", dropped)
			}
			if peak > heapSlack {
				t.Errorf("live heap grew by %d KiB during the flood; the backlog belongs in socket buffers", peak>>10)
			}
			if flooded < 1<<20 {
				t.Errorf("node flooded only %d KiB: the client was dropped before its buffers filled", flooded>>10)
			}
			fp.settle(t, heapSlack)
		})
	}
}

// TestHostileOversized: a message over ReadLimit gets its sender 1009 and
// the other side 1001, and never reaches the other side whole, whether it
// fits the copy buffer, is streamed, or is inspected.
func TestHostileOversized(t *testing.T) {
	long := `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["` + strings.Repeat("a", 100<<10) + `"]}`
	for _, tt := range []struct {
		name     string
		opts     Options
		typ      websocket.MessageType
		msg      []byte // from the client; nil: the node greets with greet instead
		greet    []byte
		nodeCode websocket.StatusCode
	}{
		{"splice, one buffer", Options{ReadLimit: 1 << 10}, websocket.MessageText,
			bytes.Repeat([]byte("x"), 2<<10), nil, websocket.StatusGoingAway},
		{"splice, streamed", Options{ReadLimit: 48 << 10}, websocket.MessageBinary,
			bytes.Repeat([]byte{0xa5}, 100<<10), nil, websocket.StatusGoingAway},
		{"inspected", Options{ReadLimit: 48 << 10, Policy: DefaultPolicy()}, websocket.MessageText,
			[]byte(long), nil, websocket.StatusGoingAway},
		{"from the node", Options{ReadLimit: 1 << 10}, 0,
			nil, bytes.Repeat([]byte("n"), 2<<10), websocket.StatusMessageTooBig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, func(n *recNode) { n.greet = tt.greet })
			_, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			ctx := testCtx(t)
			c := dial(t, "ws://"+addr, nil)
			if tt.msg != nil {
				if err := c.Write(ctx, tt.typ, tt.msg); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Errorf("client read %v, want close 1009", err)
			}
			if code := node.end(t); code != tt.nodeCode {
				t.Errorf("node's connection ended with %v, want %v", code, tt.nodeCode)
			}
			if m := node.Msgs(); len(m) != 0 {
				t.Errorf("node received %v, want nothing", m)
			}
			c.CloseNow()
			fp.settle(t, heapSlack)
		})
	}
}

// TestHostileInvalidFrames: frames that break RFC 6455, sent after a valid
// handshake, fail the client's connection with 1002 (protocol error). The
// node gets 1001 and none of it.
func TestHostileInvalidFrames(t *testing.T) {
	const protocolError = 1002
	mask := true
	tests := []struct {
		name  string
		bytes []byte
		want  int
	}{
		{"unmasked frame", frame(0x81, !mask, []byte("hi")), protocolError},
		{"reserved data opcode 0x3", frame(0x83, mask, []byte("hi")), protocolError},
		{"reserved control opcode 0xB", frame(0x8b, mask, nil), protocolError},
		{"fragmented ping", frame(0x09, mask, []byte("p")), protocolError},
		{"ping over 125 bytes", frame(0x89, mask, make([]byte, 126)), protocolError},
		{"RSV1 without compression", frame(0xc1, mask, []byte("hi")), protocolError},
		{"RSV2", frame(0xa1, mask, []byte("hi")), protocolError},
		{"RSV3", frame(0x92, mask, []byte("hi")), protocolError},
		{"continuation first", frame(0x80, mask, []byte("hi")), protocolError},
		{"new message inside a fragmented one",
			append(frame(0x01, mask, []byte("a")), frame(0x81, mask, []byte("b"))...), protocolError},
		{"close with a one-byte payload", frame(0x88, mask, []byte{3}), protocolError},
		{"close with reserved code 1005", frame(0x88, mask, []byte{0x03, 0xed}), protocolError},
		{"close reason not UTF-8", frame(0x88, mask, []byte{0x03, 0xe8, 0xff}), 1007},
		{"negative 64-bit length", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, protocolError},
	}
	node := newRecNode(t, nil)
	_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := takeFootprint()
			c := dialRaw(t, addr, "")
			if _, err := c.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			if got := c.readClose(t); got != tt.want {
				t.Errorf("client got close code %d, want %d (-1: no close frame)", got, tt.want)
			}
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			c.Close()
			fp.settle(t, heapSlack)
		})
	}
	if m := node.Msgs(); len(m) != 0 {
		t.Errorf("node received %v, want nothing", m)
	}
}

// TestHostileBadUTF8: a text message that is not UTF-8 closes the client
// with 1007, whether it fits the copy buffer, is streamed or is inspected,
// and never reaches the node whole; valid runes split across frames and
// copy buffers pass unchanged.
func TestHostileBadUTF8(t *testing.T) {
	big := strings.Repeat("a", 40<<10)
	for _, tt := range []struct {
		name string
		opts Options
		msg  string
	}{
		{"invalid byte", Options{}, "caf\xe9"},
		{"overlong encoding", Options{}, "\xc0\xaf"},
		{"surrogate half", Options{}, "\xed\xa0\x80"},
		{"streamed, invalid past the first buffer", Options{}, big + "\xff" + big},
		{"streamed, ends inside a rune", Options{}, big + "\xe2\x82"},
		{"inspected", Options{Policy: DefaultPolicy()}, `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["` + "\xff" + `"]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, nil)
			_, addr := serveGateway(t, node.URL(), &tt.opts, time.Second, nil)
			fp := takeFootprint()
			ctx := testCtx(t)
			c := dial(t, "ws://"+addr, nil)
			if err := c.Write(ctx, websocket.MessageText, []byte(tt.msg)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
				t.Errorf("client read %v, want close 1007", err)
			}
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			if m := node.Msgs(); len(m) != 0 {
				t.Errorf("node received %v, want nothing", m)
			}
			c.CloseNow()
			fp.settle(t, heapSlack)
		})
	}
	t.Run("valid runes across frames and buffers", func(t *testing.T) {
		node := newRecNode(t, func(n *recNode) { n.echo = true })
		_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		var msgs []string
		for off := readBufSize - 3; off < readBufSize; off++ { // a 4-byte rune across the copy buffer's end
			msgs = append(msgs, strings.Repeat("a", off)+"😀"+strings.Repeat("b", 100))
		}
		var soup strings.Builder
		for i := 0; soup.Len() < 100<<10; i++ {
			soup.WriteString([]string{"a", "é", "€", "😀", "ω"}[i*7%5])
		}
		msgs = append(msgs, soup.String())
		for i, m := range msgs {
			w, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				t.Fatal(err)
			}
			for b, step := []byte(m), 1+i*997%4093; len(b) > 0; b = b[min(step, len(b)):] {
				w.Write(b[:min(step, len(b))]) // one frame per write, splitting runes
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.Read(ctx); err != nil || string(got) != m {
				t.Fatalf("message %d (%d bytes): echo of %d bytes, %v", i, len(m), len(got), err)
			}
		}
		got := node.Msgs()
		for i, m := range msgs {
			if i >= len(got) || !got[i].equal(newRecMsg(websocket.MessageText, []byte(m))) {
				t.Fatalf("node received %v, want the %d messages sent", got, len(msgs))
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		node.end(t)
		fp.settle(t, heapSlack)
	})
}

// TestHostileMalformedJSON: with the default policy, a message the gateway
// cannot parse is answered by the gateway itself, as the node would (-32700
// and id null, or -32600 for JSON that is no request), and forwarded to
// nothing: a call the policy cannot read must not reach a node that might
// read it differently. With AllowAll the proxy is a pure splice and passes
// every byte on unchanged, for the node to answer.
func TestHostileMalformedJSON(t *testing.T) {
	call := callJSON(1, "system_chain")
	var batch []string
	for i := range maxBatch + 1 {
		batch = append(batch, callJSON(i, "system_chain"))
	}
	tests := []struct {
		name, msg string
		code      int
	}{
		{"truncated", `{"id":1,"jsonrpc":"2.0","method":`, -32700},
		{"not JSON", "not json", -32700},
		{"empty", "", -32700},
		{"whitespace", " \r\n\t", -32700},
		{"NUL", "\x00", -32700},
		{"byte order mark", "\ufeff" + call, -32700},
		{"trailing garbage", call + "xyz", -32700},
		{"two requests", call + call, -32700},
		{"unterminated string", `{"id":1,"jsonrpc":"2.0","method":"system_chain","params":["abc`, -32700},
		{"nested 100000 deep", strings.Repeat("[", 100000), -32700},
		{"nested objects 100000 deep", strings.Repeat(`{"a":`, 100000), -32700},
		{"empty batch", "[]", -32600},
		// jsonrpsee answers a message that is neither an object nor an
		// array as a parse error.
		{"string", `"system_chain"`, -32700},
		{"number", "42", -32700},
		{"batch over maxBatch", "[" + strings.Join(batch, ",") + "]", -32005},
	}
	t.Run("default policy", func(t *testing.T) {
		node := startNode(t)
		_, addr := serveGateway(t, node.URL(), &Options{Policy: DefaultPolicy()}, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		for _, tt := range tests {
			c.Write(ctx, websocket.MessageText, []byte(tt.msg))
			if r := readReply(t, ctx, c); r.Error == nil || r.Error.Code != tt.code || string(r.ID) != "null" {
				t.Errorf("%s: reply %+v, want error %d with id null", tt.name, r, tt.code)
			}
		}
		c.Write(ctx, websocket.MessageText, []byte(callJSON(7, "system_name")))
		if r := readReply(t, ctx, c); r.Error != nil || string(r.ID) != "7" {
			t.Errorf("system_name after the malformed messages: %+v", r)
		}
		if got := node.Seen(); !slices.Equal(got, []string{"system_name"}) {
			t.Errorf("node saw %q, want only the valid call after them", got)
		}
		c.Close(websocket.StatusNormalClosure, "")
		fp.settle(t, heapSlack)
	})
	t.Run("AllowAll", func(t *testing.T) {
		node := newRecNode(t, nil)
		_, addr := serveGateway(t, node.URL(), &Options{Policy: AllowAll()}, time.Second, nil)
		fp := takeFootprint()
		ctx := testCtx(t)
		c := dial(t, "ws://"+addr, nil)
		for _, tt := range tests {
			c.Write(ctx, websocket.MessageText, []byte(tt.msg))
		}
		waitFor(t, "the node to receive every message", func() bool { return len(node.Msgs()) >= len(tests) })
		for i, m := range node.Msgs() {
			if want := newRecMsg(websocket.MessageText, []byte(tests[i].msg)); !m.equal(want) {
				t.Errorf("%s: node received %v, want %v", tests[i].name, m, want)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		node.end(t)
		fp.settle(t, heapSlack)
	})
}

// TestHostileBinarySplice: libp2p-like binary traffic through AllowAll (a
// pure splice), messages of 1 B to 200 KiB, some sent in many frames,
// pipelined both ways, arrives byte-exact at the node and back.
func TestHostileBinarySplice(t *testing.T) {
	node := newRecNode(t, func(n *recNode) { n.echo = true })
	_, addr := serveGateway(t, node.URL(), nil, time.Second, nil)
	fp := takeFootprint()
	ctx := testCtx(t)
	c := dial(t, "ws://"+addr, nil)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	sizes := []int{1, 2, 125, 126, 127, 128, 1000, readBufSize - 1, readBufSize, readBufSize + 1, 65535, 65536, 65537, 100000, 200 << 10}
	for range 30 {
		sizes = append(sizes, 1+rng.IntN(200<<10))
	}
	msgs := make([][]byte, len(sizes))
	for i, n := range sizes {
		msgs[i] = make([]byte, n)
		for j := range msgs[i] {
			msgs[i][j] = byte(rng.Uint32())
		}
	}
	sent := make(chan error, 1)
	go func() { // pipelined: the echoes come back while this writes
		for i, m := range msgs {
			step := len(m)
			if i%3 == 2 {
				step = 1 + len(m)/7 // several frames
			}
			w, err := c.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				sent <- err
				return
			}
			for b := m; len(b) > 0; b = b[min(step, len(b)):] {
				w.Write(b[:min(step, len(b))])
			}
			if err := w.Close(); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	total := 0
	for i, m := range msgs {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if typ != websocket.MessageBinary || !bytes.Equal(got, m) {
			t.Fatalf("echo %d: %v of %d bytes, want the %d bytes sent", i, typ, len(got), len(m))
		}
		total += len(m)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	got := node.Msgs()
	for i, m := range msgs {
		if i >= len(got) || !got[i].equal(newRecMsg(websocket.MessageBinary, m)) {
			t.Fatalf("node received %d messages, want the %d sent, byte-exact (first difference at %d)", len(got), len(msgs), i)
		}
	}
	t.Logf("%d messages, %d KiB each way, byte-exact", len(msgs), total>>10)
	c.Close(websocket.StatusNormalClosure, "")
	if code := node.end(t); code != websocket.StatusNormalClosure {
		t.Errorf("node's connection ended with %v, want the client's 1000", code)
	}
	msgs = nil
	fp.settle(t, heapSlack)
}

// TestHostileStalledFrame: a client that declares a frame and then sends
// nothing more holds the gateway's reader inside the frame. A declared
// length over ReadLimit gets 1009 at once; one within it leaves the frame
// pending, and unanswered pings are what drop the client. Either way the
// node gets 1001 and nothing else.
func TestHostileStalledFrame(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header []byte
		want   []int // close codes the client may get; -1: dropped
	}{
		{"1 GiB, over the limit", []byte{0x82, 0xff, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 2, 3, 4}, []int{int(websocket.StatusMessageTooBig)}},
		{"1000 bytes, within the limit", []byte{0x82, 0xfe, 0x03, 0xe8, 1, 2, 3, 4}, []int{-1, int(websocket.StatusGoingAway)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := newRecNode(t, nil)
			_, addr := serveGateway(t, node.URL(), &Options{PingInterval: 200 * time.Millisecond, ReadLimit: 1 << 10}, time.Second, nil)
			fp := takeFootprint()
			c := dialRaw(t, addr, "")
			start := time.Now()
			if _, err := c.Write(append(tt.header, 'x')); err != nil {
				t.Fatal(err)
			}
			if code := c.readClose(t); !slices.Contains(tt.want, code) {
				t.Errorf("client got close code %d, want one of %v (-1: dropped)", code, tt.want)
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("dropped after %v, want about two PingIntervals", d)
			}
			if code := node.end(t); code != websocket.StatusGoingAway {
				t.Errorf("node's connection ended with %v, want 1001", code)
			}
			if m := node.Msgs(); len(m) != 0 {
				t.Errorf("node received %v, want nothing", m)
			}
			c.Close()
			fp.settle(t, heapSlack)
		})
	}
}

// TestHostileSlowFragments: a client that sends one message as slow
// fragments, answering pings between them, is within its rights: the
// gateway's pings to the node must not wait behind the message, or the
// node would look dead (the client closed with 1012, the node marked
// unhealthy) at a client's whim.
func TestHostileSlowFragments(t *testing.T) {
	node := newRecNode(t, nil)
	// Pings every 250 ms, fragments 400 ms apart: a ping falls in every
	// gap, and a loaded -race run has 250 ms to answer each.
	_, addr := serveGateway(t, node.URL(), &Options{PingInterval: 250 * time.Millisecond}, time.Second, nil)
	fp := takeFootprint()
	ctx := testCtx(t)
	c := dial(t, "ws://"+addr, nil)
	closed := c.CloseRead(ctx) // answers the gateway's pings
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 8 {
		part := fmt.Appendf(nil, "fragment %d;", i)
		want = append(want, part...)
		if _, err := w.Write(part); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to receive the message", func() bool { return len(node.Msgs()) == 1 || closed.Err() != nil })
	if closed.Err() != nil {
		t.Fatalf("the gateway closed the client while it sent fragments and answered pings")
	}
	if m := node.Msgs(); !m[0].equal(newRecMsg(websocket.MessageText, want)) {
		t.Errorf("node received %v, want %q", m[0], want)
	}
	c.Close(websocket.StatusNormalClosure, "")
	node.end(t)
	fp.settle(t, heapSlack)
}
