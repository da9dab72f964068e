package wssproxy

import (
	"bytes"
	"io"
	"testing"
	"testing/synctest"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// FuzzRelayClientBytes: whatever bytes a client (or, with fromNode, a
// node) sends after its handshake, the relay ends (no goroutine is left
// blocked: synctest would report a deadlock) and what reaches the other
// side is a well-formed stream of frames, masked toward the node
// (possibly cut off where the connection ended).
func FuzzRelayClientBytes(f *testing.F) {
	text := func(s string, fin bool) []byte {
		h := wsframe.Header{Fin: fin, Opcode: wsframe.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: int64(len(s))}
		b := append(wsframe.AppendHeader(nil, h), s...)
		wsframe.Mask(h.Key, 0, b[len(b)-len(s):])
		return b
	}
	f.Add(text(`{"jsonrpc":"2.0","id":1,"method":"system_chain"}`, true), false, false)
	f.Add(append(text("ab", false), 0x80, 0x81, 0, 0, 0, 0, 'c'), true, false)
	f.Add([]byte{0x89, 0x80, 1, 2, 3, 4, 0x88, 0x82, 0, 0, 0, 0, 3, 0xe8}, false, false)
	f.Add(append([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9}, make([]byte, 1000)...), true, false)
	f.Add([]byte{0x01, 2, 'a', 'b', 0x89, 0, 0x80, 1, 'c', 0x88, 2, 3, 0xe9}, false, true)
	f.Fuzz(func(t *testing.T, in []byte, inspect, fromNode bool) {
		policy := AllowAll()
		if inspect {
			policy = nil
		}
		synctest.Test(t, func(t *testing.T) {
			cPeer, nPeer, _, ended := relayConns(t, &Options{PingInterval: -1, WriteTimeout: -1, Policy: policy, ReadLimit: 1 << 16})
			from, to := cPeer, nPeer
			if fromNode {
				from, to = nPeer, cPeer
			}
			go io.Copy(io.Discard, from) // the gateway's answers and close frame
			go func() {
				from.Write(in)
				from.Close()
			}()
			var got bytes.Buffer
			io.Copy(&got, to)
			<-ended
			checkFrames(t, got.Bytes(), !fromNode)
		})
	})
}

// checkFrames fails t unless b is a sequence of frames (masked ones if
// masked) that RFC 6455 allows, the last possibly cut short.
func checkFrames(t *testing.T, b []byte, masked bool) {
	var frag wsframe.Fragments
	for len(b) > 0 {
		h, n, err := wsframe.ParseHeader(b)
		if err == wsframe.ErrShort {
			return
		}
		if err == nil {
			err = h.Check(masked)
		}
		if err == nil && !h.Opcode.IsControl() {
			_, err = frag.Next(&h)
		}
		if err != nil {
			t.Fatalf("the node got a bad frame %+v: %v", h, err)
		}
		if int64(len(b)-n) < h.Length {
			return
		}
		b = b[n+int(h.Length):]
	}
}
