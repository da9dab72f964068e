package wssproxy

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/coder/websocket"
)

func TestUTF8Stream(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	samples := [][]byte{
		[]byte("plain ascii"), []byte("é€😀 mixed ✓"), []byte("bad \xff byte"), []byte("cut \xe2\x82"),
		[]byte("\xed\xa0\x80 surrogate"), []byte("overlong \xc0\xaf"), bytes.Repeat([]byte("😀"), 1000),
	}
	for _, s := range samples {
		for range 50 { // random chunkings agree with utf8.Valid
			var u utf8Stream
			ok := true
			for rest := s; len(rest) > 0; {
				n := 1 + rng.IntN(len(rest))
				ok = u.write(rest[:n]) && ok
				rest = rest[n:]
			}
			ok = ok && u.end()
			if ok != utf8.Valid(s) {
				t.Fatalf("%q: stream says %v, utf8.Valid %v", s, ok, utf8.Valid(s))
			}
		}
	}
}

// TestBadUTF8 closes a client with 1007, for a short message and for one
// streamed in many frames; the node never gets a complete message (a
// streamed one may have begun) and is closed with 1001.
func TestBadUTF8(t *testing.T) {
	t.Parallel()
	for _, msg := range [][]byte{[]byte("ok \xff"), append(bytes.Repeat([]byte("é"), 40000), 0xff)} {
		node := newEchoNode(t, nil)
		_, url := startProxy(t, node.URL(), nil)
		c := dial(t, url, nil)
		ctx := testCtx(t)
		w, _ := c.Writer(ctx, websocket.MessageText)
		w.Write(msg)
		w.Close()
		_, _, err := c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
			t.Errorf("%d-byte message: client saw %v, want 1007", len(msg), err)
		}
		if err := node.nextClose(t); websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("node saw %v, want 1001", err)
		}
	}
}
