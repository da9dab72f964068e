package wssproxy

import (
	"bytes"
	"io"
	"testing"
	"testing/synctest"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// TestFramesPassAsTheyCame: a client's frame reaches the node byte for
// byte, masking key included, whether the session reads it (and lets it
// through unchanged) or the relay is a pure splice; so does a node's frame
// on its way to the client.
func TestFramesPassAsTheyCame(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		policy *Policy
	}{{"splice", AllowAll()}, {"inspected", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cPeer, nPeer, pc, ended := relayConns(t, &Options{PingInterval: -1, WriteTimeout: -1, Policy: tt.policy})
				msg := []byte(`{"jsonrpc":"2.0","id":7,"method":"system_chain","params":[]}`)
				key := [4]byte{0xde, 0xad, 0xbe, 0xef}
				f := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Masked: true, Key: key, Length: int64(len(msg))})
				f = append(f, msg...)
				wsframe.Mask(key, 0, f[len(f)-len(msg):])
				go cPeer.Write(f)
				got := make([]byte, len(f))
				if _, err := io.ReadFull(nPeer, got); err != nil || !bytes.Equal(got, f) {
					t.Errorf("node read % x (%v), want the client's frame % x", got, err, f)
				}
				reply := append([]byte{0x81, 126, 0x00, 200}, bytes.Repeat([]byte("r"), 200)...)
				go nPeer.Write(reply)
				got = make([]byte, len(reply))
				if _, err := io.ReadFull(cPeer, got); err != nil || !bytes.Equal(got, reply) {
					t.Errorf("client read % x (%v), want the node's frame % x", got, err, reply)
				}
				pc.kill()
				<-ended
			})
		})
	}
}

// TestIdleHoldsNoBuffers: once a message has passed each way and the
// connection is idle, neither copier holds a pooled read buffer and
// neither gather a write buffer.
func TestIdleHoldsNoBuffers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		client, node, pc, ended := relayPipes(t, &Options{PingInterval: -1, WriteTimeout: -1, ReadLimit: 1 << 20, Policy: AllowAll()}, true, true)
		big := make([]byte, 70000) // longer than a read buffer: passed in pieces
		f := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Opcode: wsframe.OpBinary, Masked: true, Key: [4]byte{9, 9, 9, 9}, Length: int64(len(big))})
		client.write(append(f, big...))
		var got int64
		for got < int64(len(big)) {
			got += (<-node.frames).Length
		}
		node.write([]byte{0x81, 2, 'o', 'k'})
		<-client.frames
		synctest.Wait() // every goroutine blocked: the connection is idle
		for d, c := range pc.copiers {
			if c.pooled != nil {
				t.Errorf("copier %d holds a pooled read buffer while idle", d)
			}
		}
		for _, s := range []*socket{pc.client, pc.node} {
			s.out.mu.Lock()
			if s.out.buf != nil {
				t.Errorf("%v's gather holds a write buffer while idle", s.side)
			}
			s.out.mu.Unlock()
		}
		pc.kill()
		<-ended
	})
}
