package wssproxy

import (
	"bytes"
	"compress/flate"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/wssgate/wssgate/internal/pmdeflate"
	"github.com/wssgate/wssgate/internal/wsframe"
)

// FuzzRelayDeflate is FuzzRelayClientBytes on a connection that
// negotiated permessage-deflate: whatever a client sends (compressed
// messages, RSV1 anywhere, deflate bombs) or a node sends, the relay ends
// with no goroutine left, the node gets only plain, well-formed masked
// frames, and the client only well-formed frames, RSV1 on the first frame
// of a message at most, each compressed message inflating.
func FuzzRelayDeflate(f *testing.F) {
	frame := func(h wsframe.Header, p []byte) []byte {
		h.Length = int64(len(p))
		b := append(wsframe.AppendHeader(nil, h), p...)
		if h.Masked {
			wsframe.Mask(h.Key, 0, b[len(b)-len(p):])
		}
		return b
	}
	key := [4]byte{9, 8, 7, 6}
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"system_chain","params":["` + strings.Repeat("ab", 600) + `"]}`)
	z := deflateMsg(f, call)
	f.Add(frame(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText, Masked: true, Key: key}, z), false, false, false)
	f.Add(append(frame(wsframe.Header{RSV: rsv1, Opcode: wsframe.OpText, Masked: true, Key: key}, z[:5]),
		frame(wsframe.Header{Fin: true, Opcode: wsframe.OpContinuation, Masked: true, Key: key}, z[5:])...), true, false, true)
	f.Add(frame(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpText, Masked: true, Key: key}, deflateMsg(f, make([]byte, 1<<20))), true, false, false)
	f.Add(frame(wsframe.Header{Fin: true, RSV: rsv1, Opcode: wsframe.OpContinuation, Masked: true, Key: key}, z), false, false, false)
	f.Add(frame(wsframe.Header{Fin: true, Opcode: wsframe.OpText}, call), false, true, false)
	f.Add(append(frame(wsframe.Header{Opcode: wsframe.OpText}, call[:100]), frame(wsframe.Header{Fin: true, Opcode: wsframe.OpContinuation}, call[100:])...), true, true, true)
	f.Fuzz(func(t *testing.T, in []byte, inspect, fromNode, takeover bool) {
		synctest.Test(t, func(t *testing.T) {
			cPeer, nPeer, ended := deflateRelay(t, inspect, takeover)
			from, to := cPeer, nPeer
			if fromNode {
				from, to = nPeer, cPeer
			}
			go io.Copy(io.Discard, from)
			go func() {
				from.Write(in)
				from.Close()
			}()
			var got bytes.Buffer
			io.Copy(&got, to)
			<-ended
			if fromNode {
				checkDeflateFrames(t, got.Bytes(), takeover)
			} else {
				checkFrames(t, got.Bytes(), true)
			}
		})
	})
}

// deflateRelay is relayConns with permessage-deflate negotiated, every
// text message to the client compressed, and a read limit of 64 KiB.
func deflateRelay(t *testing.T, inspect, takeover bool) (cPeer, nPeer net.Conn, ended chan struct{}) {
	o := &Options{PingInterval: -1, WriteTimeout: -1, ReadLimit: 1 << 16, HealthInterval: -1,
		Logger: slog.New(slog.DiscardHandler), Deflate: &DeflateOptions{Threshold: -1, ContextTakeover: takeover}}
	if !inspect {
		o.Policy = AllowAll()
	}
	pc := pipeConn(t, o)
	if pc.dfl, _ = pc.p.negotiateDeflateValues([]string{offerChromium}); pc.dfl == nil {
		t.Fatal("deflate not negotiated")
	}
	return runPipes(pc)
}

// checkDeflateFrames fails t unless b, what the client got, is a sequence
// of unmasked frames RFC 6455 and 7692 allow (the last possibly cut
// short), and every whole compressed message inflates.
func checkDeflateFrames(t *testing.T, b []byte, takeover bool) {
	var frag wsframe.Fragments
	var z []byte
	compressed := false
	in := pmdeflate.NewInflater(pmdeflate.Params{ClientNoContextTakeover: true})
	var window []byte // the client's view of the server's context, with takeover
	for len(b) > 0 {
		h, n, err := wsframe.ParseHeader(b)
		if err == wsframe.ErrShort {
			return
		}
		rsv := h.RSV
		start := false
		if err == nil {
			h.RSV = 0
			err = h.Check(false)
		}
		if err == nil && !h.Opcode.IsControl() {
			start, err = frag.Next(&h)
		}
		if err == nil && rsv != 0 && (rsv != rsv1 || !start) {
			err = wsframe.ProtocolError("RSV1 on a frame that does not start a message")
		}
		if err != nil {
			t.Fatalf("the client got a bad frame %+v (RSV %#x): %v", h, rsv, err)
		}
		if int64(len(b)-n) < h.Length {
			return
		}
		p := b[n : n+int(h.Length)]
		b = b[n+int(h.Length):]
		if h.Opcode.IsControl() {
			continue
		}
		if start {
			compressed, z = rsv == rsv1, z[:0]
		}
		if !compressed {
			continue
		}
		z = append(z, p...)
		if !h.Fin {
			continue
		}
		if takeover { // inflate as the client does, with what came before
			r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(z), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")), window)
			msg, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("a compressed message of %d bytes does not inflate: %v", len(z), err)
			}
			window = append(window, msg...)
			window = window[max(0, len(window)-32<<10):]
			continue
		}
		if _, err := in.Inflate(nil, z, -1); err != nil {
			t.Fatalf("a compressed message of %d bytes does not inflate: %v", len(z), err)
		}
	}
}
