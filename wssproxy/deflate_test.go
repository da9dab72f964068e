package wssproxy

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// rawClient speaks frames itself, so that a test sets RSV1 as it likes
// and sees the frames the gateway sends.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// rawDial opens a WebSocket to the gateway at url (ws://), offering the
// extensions ext ("" for no header).
func rawDial(t *testing.T, url, ext string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return &rawClient{t: t, conn: conn, br: br, resp: resp}
}

// send writes a frame, masked as a client's must be.
func (c *rawClient) send(h wsframe.Header, payload []byte) {
	c.t.Helper()
	h.Masked, h.Key, h.Length = true, [4]byte{7, 1, 9, 3}, int64(len(payload))
	b := wsframe.AppendHeader(nil, h)
	p := bytes.Clone(payload)
	wsframe.Mask(h.Key, 0, p)
	if _, err := c.conn.Write(append(b, p...)); err != nil {
		c.t.Fatal(err)
	}
}

// sendCompressed writes msg as one compressed text frame.
func (c *rawClient) sendCompressed(msg []byte) {
	c.t.Helper()
	c.send(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}, deflateMsg(c.t, msg))
}

// frame reads the next frame the gateway sends.
func (c *rawClient) frame() (wsframe.Header, []byte) {
	c.t.Helper()
	b, _ := c.br.Peek(wsframe.MaxHeaderLen)
	h, n, err := wsframe.ParseHeader(b)
	if err != nil {
		c.t.Fatalf("frame header % x: %v", b, err)
	}
	c.br.Discard(n)
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatal(err)
	}
	return h, p
}

// message reads a data message: its opcode, whether it came compressed,
// its payload inflated, and how many frames it took. Pings are skipped.
func (c *rawClient) message() (op wsframe.Opcode, compressed bool, msg []byte, frames int) {
	c.t.Helper()
	var z []byte
	for {
		h, p := c.frame()
		if h.Opcode == wsframe.OpPing || h.Opcode == wsframe.OpPong {
			continue
		}
		if h.Opcode == wsframe.OpClose {
			c.t.Fatalf("closed: % x", p)
		}
		if frames == 0 {
			op, compressed = h.Opcode, h.RSV == rsv1
		} else if h.RSV != 0 || h.Opcode != wsframe.OpContinuation {
			c.t.Fatalf("frame %d of a message: RSV %#x, opcode %d", frames, h.RSV, h.Opcode)
		}
		frames++
		z = append(z, p...)
		if h.Fin {
			break
		}
	}
	if !compressed {
		return op, false, z, frames
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(z), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	msg, err := io.ReadAll(r)
	if err != nil {
		c.t.Fatalf("inflating a %d-byte message: %v", len(z), err)
	}
	return op, true, msg, frames
}

// closeCode reads until the gateway's close frame and returns its code.
func (c *rawClient) closeCode() wsframe.StatusCode {
	c.t.Helper()
	for {
		h, p := c.frame()
		if h.Opcode == wsframe.OpClose {
			ce, err := wsframe.ParseClose(p)
			if err != nil {
				c.t.Fatal(err)
			}
			return ce.Code
		}
	}
}

// deflateMsg compresses msg as a client does (RFC 7692 section 7.2.1).
func deflateMsg(t testing.TB, msg []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(msg)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

const (
	offerChromium = "permessage-deflate; client_max_window_bits"
	answerDefault = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

// TestDeflateHandshake: the answer to each offer, with the gateway's
// options; the node's handshake never carries the offer.
func TestDeflateHandshake(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, nil)
	tests := []struct {
		name, offer string
		opts        *DeflateOptions
		want        string
	}{
		{"no offer", "", nil, ""},
		{"chromium and ws", offerChromium, nil, answerDefault},
		{"firefox", "permessage-deflate", nil, answerDefault},
		{"disabled", offerChromium, &DeflateOptions{Disabled: true}, ""},
		{"context takeover", offerChromium, &DeflateOptions{ContextTakeover: true, ClientMaxWindowBits: 10},
			"permessage-deflate; client_max_window_bits=10"},
		{"invalid offer", "permessage-deflate; server_max_window_bits=16", nil, ""},
		{"unknown extension", "x-webkit-deflate-frame", nil, ""},
		{"second offer", "permessage-deflate; foo, permessage-deflate", nil, answerDefault},
		{"small server window", "permessage-deflate; server_max_window_bits=9", nil, answerDefault + "; server_max_window_bits=9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, url := startProxy(t, node.URL(), &Options{Deflate: tt.opts})
			c := rawDial(t, url, tt.offer)
			if got := c.resp.Header.Get("Sec-WebSocket-Extensions"); got != tt.want {
				t.Errorf("answer %q, want %q", got, tt.want)
			}
		})
	}
	for _, h := range node.Handshakes() {
		if v := h.Values("Sec-WebSocket-Extensions"); len(v) != 0 {
			t.Errorf("the node was offered %q", v)
		}
	}
}

// TestDeflateMessages: a client that compresses (coder/websocket, with and
// without context takeover) exchanges messages of every size through the
// gateway with a node that does not; both ends see exactly what was sent.
func TestDeflateMessages(t *testing.T) {
	t.Parallel()
	msgs := []message{
		{websocket.MessageText, `{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}`},
		{websocket.MessageText, strings.Repeat(`{"jsonrpc":"2.0","id":2,"result":"0x0102"},`, 1000)},
		{websocket.MessageBinary, strings.Repeat("\x00\x01\x02\x03", 10000)},
		{websocket.MessageText, strings.Repeat("0123456789abcdef", 200000)}, // 3.2 MB, over the gather
		{websocket.MessageText, ""},
	}
	for _, tt := range []struct {
		name string
		mode websocket.CompressionMode
		opts *DeflateOptions
	}{
		{"no context takeover", websocket.CompressionNoContextTakeover, nil},
		{"client asks takeover, gateway declines", websocket.CompressionContextTakeover, nil},
		{"context takeover", websocket.CompressionContextTakeover, &DeflateOptions{ContextTakeover: true}},
		{"every message compressed", websocket.CompressionNoContextTakeover, &DeflateOptions{Threshold: -1, Level: 9}},
		{"no offer", websocket.CompressionDisabled, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := newRecNode(t, func(n *recNode) { n.echo = true })
			_, url := startProxy(t, node.URL(), &Options{Deflate: tt.opts})
			c := dial(t, url, &websocket.DialOptions{CompressionMode: tt.mode, CompressionThreshold: 64})
			ctx := testCtx(t)
			var got []message
			for round := range 2 {
				for _, m := range msgs {
					if err := c.Write(ctx, m.Type, []byte(m.Data)); err != nil {
						t.Fatal(err)
					}
					typ, b, err := c.Read(ctx)
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					got = append(got, message{typ, string(b)})
				}
			}
			if diff := cmp.Diff(append(msgs, msgs...), got); diff != "" {
				t.Errorf("echoes (-want +got):\n%s", diff)
			}
			var want []recMsg
			for range 2 {
				for _, m := range msgs {
					want = append(want, newRecMsg(m.Type, []byte(m.Data)))
				}
			}
			if diff := cmp.Diff(want, node.Msgs(), cmp.Comparer(recMsg.equal)); diff != "" {
				t.Errorf("the node received (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeflateFrames: which messages go compressed (text of the threshold
// or more, whole or passed through in frames of their own), which plain.
func TestDeflateFrames(t *testing.T) {
	t.Parallel()
	// 3 MB of hex in JSON, as a node's big replies are: it compresses by
	// half, so its compressed form takes many frames.
	rnd := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, 1500000)
	for i := range raw {
		raw[i] = byte(rnd.IntN(256))
	}
	big := `{"jsonrpc":"2.0","method":"state_storage","params":{"result":"0x` + hex.EncodeToString(raw) + `"}}`
	node := newEchoNode(t, func(n *echoNode) { n.greet = big })
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	c := rawDial(t, url, offerChromium)

	// The greeting passes through (no call awaits a reply): compressed as
	// it streams, in several frames.
	op, compressed, msg, frames := c.message()
	if op != wsframe.OpText || !compressed || string(msg) != big || frames < 2 {
		t.Errorf("a 3 MB message passed through: opcode %d, compressed %v, %d frames, right %v", op, compressed, frames, string(msg) == big)
	}
	for _, tt := range []struct {
		name       string
		op         wsframe.Opcode
		msg        string
		compressed bool
	}{
		{"small call", wsframe.OpText, `{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}`, false},
		{"call of 1 KiB", wsframe.OpText, `{"jsonrpc":"2.0","id":2,"method":"system_health","params":["` + strings.Repeat("a", 1024) + `"]}`, true},
		{"just under the threshold", wsframe.OpText, `{"jsonrpc":"2.0","id":3,"method":"x","params":["` + strings.Repeat("b", DefaultDeflateThreshold-1-51) + `"]}`, false},
		{"batch", wsframe.OpText, `[` + strings.Repeat(`{"jsonrpc":"2.0","id":4,"method":"chain_getBlockHash","params":[1]},`, 30) + `{"jsonrpc":"2.0","id":5,"method":"x"}]`, true},
	} {
		if tt.name == "just under the threshold" && len(tt.msg) != DefaultDeflateThreshold-1 {
			t.Fatalf("%s: %d bytes", tt.name, len(tt.msg))
		}
		c.send(wsframe.Header{Fin: true, Opcode: tt.op}, []byte(tt.msg))
		op, compressed, got, _ := c.message()
		if op != tt.op || compressed != tt.compressed || string(got) != tt.msg {
			t.Errorf("%s (%d bytes): echoed with opcode %d, compressed %v, same %v", tt.name, len(tt.msg), op, compressed, string(got) == tt.msg)
		}
	}
}

// TestDeflateFramesBinary: binary messages (libp2p's, say) go plain.
func TestDeflateFramesBinary(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, func(n *recNode) { n.echo = true })
	_, url := startProxy(t, node.URL(), nil)
	c := rawDial(t, url, offerChromium)
	bin := bytes.Repeat([]byte{9}, 8000)
	c.send(wsframe.Header{Fin: true, Opcode: wsframe.OpBinary}, bin)
	if op, compressed, got, _ := c.message(); op != wsframe.OpBinary || compressed || !bytes.Equal(got, bin) {
		t.Errorf("binary echo: opcode %d, compressed %v", op, compressed)
	}
	// A client may compress binary messages: the node gets them plain.
	c.send(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpBinary}, deflateMsg(t, bin))
	if _, _, got, _ := c.message(); !bytes.Equal(got, bin) {
		t.Error("a compressed binary message did not come back whole")
	}
}

// TestDeflateUnsafeCall: the policy reads a compressed call inflated, so
// an unsafe one is refused and never reaches the node, and a safe one
// reaches it plain.
func TestDeflateUnsafeCall(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{Policy: DefaultPolicy()})
	c := rawDial(t, url, offerChromium)
	pad := strings.Repeat(" ", 2000) // compressed by any client's threshold
	c.sendCompressed([]byte(`{"jsonrpc":"2.0","id":1,"method":"author_rotateKeys","params":[]}` + pad))
	_, _, reply, _ := c.message()
	if !strings.Contains(string(reply), `"id":1`) || !strings.Contains(string(reply), "author_rotateKeys") || !strings.Contains(string(reply), `"error"`) {
		t.Errorf("reply to a compressed unsafe call: %s", reply)
	}
	safe := `{"jsonrpc":"2.0","method":"system_health","params":[]}` + pad // a notification: no reply
	c.sendCompressed([]byte(safe))
	waitFor(t, "the safe call to reach the node", func() bool { return len(node.Msgs()) > 0 })
	if got := node.Msgs(); len(got) != 1 || !got[0].equal(newRecMsg(websocket.MessageText, []byte(safe))) {
		t.Errorf("the node received %v, want only the safe call, plain", got)
	}
}

// TestDeflateBomb: a compressed message of 5 KB that inflates to 5 MiB,
// over a read limit of 1 MiB, closes the client with 1009 and reaches the
// node not at all; one that inflates to just the limit passes.
func TestDeflateBomb(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	node := newRecNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{ReadLimit: limit})

	c := rawDial(t, url, offerChromium)
	fits := bytes.Repeat([]byte{'0'}, limit)
	c.sendCompressed(fits)
	waitFor(t, "the message at the limit to reach the node", func() bool { return len(node.Msgs()) == 1 })

	bomb := deflateMsg(t, bytes.Repeat([]byte{'0'}, 5<<20))
	if len(bomb) > 10<<10 {
		t.Fatalf("bomb of %d bytes", len(bomb))
	}
	c.send(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}, bomb)
	if code := c.closeCode(); code != wsframe.StatusMessageTooBig {
		t.Errorf("close %d, want 1009", code)
	}
	if n := len(node.Msgs()); n != 1 {
		t.Errorf("the node received %d messages, want only the first", n)
	}
}

// TestDeflateProtocolErrors: RSV1 where RFC 7692 does not allow it closes
// the client with 1002; data that does not inflate with 1007.
func TestDeflateProtocolErrors(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, nil)
	_, url := startProxy(t, node.URL(), nil)
	z := deflateMsg(t, []byte(`{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}`))
	tests := []struct {
		name   string
		offer  string
		frames []wsframe.Header
		data   [][]byte
		want   wsframe.StatusCode
	}{
		{"RSV1 without negotiation", "", []wsframe.Header{{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}}, [][]byte{z}, wsframe.StatusProtocolError},
		{"RSV1 on a continuation", offerChromium,
			[]wsframe.Header{{Opcode: wsframe.OpText}, {Fin: true, RSV: rsv1, Opcode: wsframe.OpContinuation}}, [][]byte{[]byte("{"), []byte("}")}, wsframe.StatusProtocolError},
		{"RSV1 on a ping", offerChromium, []wsframe.Header{{Fin: true, RSV: rsv1, Opcode: wsframe.OpPing}}, [][]byte{nil}, wsframe.StatusProtocolError},
		{"RSV2", offerChromium, []wsframe.Header{{Fin: true, RSV: 0x20, Opcode: wsframe.OpText}}, [][]byte{z}, wsframe.StatusProtocolError},
		{"not deflate", offerChromium, []wsframe.Header{{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}}, [][]byte{{0xff, 0xff, 0xff}}, wsframe.StatusInvalidPayload},
		{"truncated", offerChromium, []wsframe.Header{{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}}, [][]byte{z[:len(z)/2]}, wsframe.StatusInvalidPayload},
		{"not UTF-8", offerChromium, []wsframe.Header{{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}}, [][]byte{deflateMsg(t, []byte{0xc3, 0x28})}, wsframe.StatusInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rawDial(t, url, tt.offer)
			for i, h := range tt.frames {
				c.send(h, tt.data[i])
			}
			if code := c.closeCode(); code != tt.want {
				t.Errorf("close %d, want %d", code, tt.want)
			}
		})
	}
	if n := len(node.Msgs()); n != 0 {
		t.Errorf("the node received %d messages", n)
	}
}

// TestDeflateFragmented: a compressed message in several frames (RSV1 on
// the first only) is inflated whole.
func TestDeflateFragmented(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, func(n *recNode) { n.echo = true })
	_, url := startProxy(t, node.URL(), nil)
	c := rawDial(t, url, offerChromium)
	msg := []byte(strings.Repeat(`{"jsonrpc":"2.0","id":7,"result":"0xabcdef"},`, 500))
	z := deflateMsg(t, msg)
	parts := [][]byte{z[:10], z[10:100], z[100:]}
	for i, p := range parts {
		h := wsframe.Header{Fin: i == len(parts)-1, Opcode: wsframe.OpContinuation}
		if i == 0 {
			h.Opcode, h.RSV = wsframe.OpText, rsv1
		}
		c.send(h, p)
	}
	if _, compressed, got, _ := c.message(); !compressed || !bytes.Equal(got, msg) {
		t.Errorf("echo of a fragmented compressed message: compressed %v, same %v", compressed, bytes.Equal(got, msg))
	}
}

// TestDeflateNoOffer: a client that offers nothing gets plain frames,
// whatever their size.
func TestDeflateNoOffer(t *testing.T) {
	t.Parallel()
	node := newRecNode(t, func(n *recNode) { n.echo = true })
	_, url := startProxy(t, node.URL(), &Options{Deflate: &DeflateOptions{Threshold: -1}})
	c := rawDial(t, url, "")
	if ext := c.resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
		t.Errorf("answered %q to no offer", ext)
	}
	msg := []byte(strings.Repeat(`{"jsonrpc":"2.0","id":1,"result":"0x00"}`, 1000))
	c.send(wsframe.Header{Fin: true, Opcode: wsframe.OpText}, msg)
	if _, compressed, got, _ := c.message(); compressed || !bytes.Equal(got, msg) {
		t.Errorf("echo of 40 KB without the extension: compressed %v, same %v", compressed, bytes.Equal(got, msg))
	}
}

// TestDeflateBombMemory sends 16 deflate bombs at once, each 80 KB that
// would inflate to 64 MiB, through a gateway with a read limit of 1 MiB:
// each is closed with 1009, and the heap grows by no more than the limit
// (and a little) per connection, where the bombs inflated would take
// 1 GiB. Not parallel: it measures the process's heap.
func TestDeflateBombMemory(t *testing.T) {
	const clients, limit, inflated = 16, 1 << 20, 64 << 20
	var zb bytes.Buffer
	fw, _ := flate.NewWriter(&zb, flate.BestSpeed)
	zero := make([]byte, 1<<20)
	for range inflated / len(zero) {
		fw.Write(zero)
	}
	fw.Flush()
	bomb := bytes.TrimSuffix(zb.Bytes(), []byte{0, 0, 0xff, 0xff})

	node := newRecNode(t, nil)
	_, url := startProxy(t, node.URL(), &Options{ReadLimit: limit})
	cs := make([]*rawClient, clients)
	for i := range cs {
		cs[i] = rawDial(t, url, offerChromium)
	}
	stop, peak := make(chan struct{}), make(chan uint64, 1)
	base := takeFootprint()
	go samplePeakHeap(stop, peak)
	codes := make(chan wsframe.StatusCode, clients)
	for _, c := range cs {
		go func() {
			c.send(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}, bomb)
			codes <- c.closeCode()
		}()
	}
	for range clients {
		if code := <-codes; code != wsframe.StatusMessageTooBig {
			t.Errorf("close %d, want 1009", code)
		}
	}
	close(stop)
	grew := int64(<-peak) - int64(base.heap)
	t.Logf("%d bombs of %d KB (%d MiB inflated): heap grew by at most %d KiB", clients, len(bomb)>>10, inflated>>20, grew>>10)
	// Each connection may hold its compressed message, the limit inflated
	// and a decompressor: about 1.2 MiB.
	if grew > clients*(limit+limit/4) {
		t.Errorf("heap grew by %d MiB for %d bombs under a %d MiB limit", grew>>20, clients, limit>>20)
	}
	if n := len(node.Msgs()); n != 0 {
		t.Errorf("the node received %d messages", n)
	}
}

// TestDeflateShared: shared mode's clients, served by the websocket
// package, negotiate the same way (off with Disabled), get the metadata
// compressed, and the read limit applies to what a client's compressed
// message inflates to (1009).
func TestDeflateShared(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	var meta string
	if err := json.Unmarshal(nodeCall(t, node, "state_getMetadata"), &meta); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*DeflateOptions{nil, {Disabled: true}} {
		_, url := startShared(t, &ShareOptions{ConnsPerNode: 1}, &Options{Policy: DefaultPolicy(), Deflate: d, ReadLimit: 4 << 20}, node)
		c := rawDial(t, url, offerChromium)
		want := "permessage-deflate; client_no_context_takeover; server_no_context_takeover" // the package's order
		if d != nil {
			want = ""
		}
		if got := c.resp.Header.Get("Sec-WebSocket-Extensions"); got != want {
			t.Fatalf("Deflate %+v: answered %q, want %q", d, got, want)
		}
		c.send(wsframe.Header{Fin: true, Opcode: wsframe.OpText}, []byte(`{"jsonrpc":"2.0","id":1,"method":"state_getMetadata","params":[]}`))
		_, compressed, got, _ := c.message()
		if compressed != (d == nil) || !strings.Contains(string(got), meta) {
			t.Errorf("Deflate %+v: metadata compressed %v, %d bytes", d, compressed, len(got))
		}
		if d == nil {
			c.send(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText}, deflateMsg(t, make([]byte, 5<<20)))
			if code := c.closeCode(); code != wsframe.StatusMessageTooBig {
				t.Errorf("a 5 MiB message compressed over a 4 MiB limit: close %d, want 1009", code)
			}
		}
	}
}
