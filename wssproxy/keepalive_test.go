package wssproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// The keepalive's timers run on the time package, which a synctest
// bubble fakes: these tests relay between net.Pipe peers inside one, so
// an idle timeout of minutes takes no real time and is checked to the
// tick.

// pipePeer is the far end of one of the relay's sockets: it reads frames
// and, if answer is set, answers pings.
type pipePeer struct {
	conn   net.Conn
	masked bool // frames it writes are masked (it is the client)
	answer bool
	frames chan wsframe.Header // data and close frames it read
	closes chan wsframe.CloseError
	done   chan error // its read loop's end
}

func newPipePeer(conn net.Conn, masked, answer bool) *pipePeer {
	pp := &pipePeer{conn: conn, masked: masked, answer: answer,
		frames: make(chan wsframe.Header, 16), closes: make(chan wsframe.CloseError, 1), done: make(chan error, 1)}
	go func() { pp.done <- pp.read() }()
	return pp
}

func (pp *pipePeer) read() error {
	var hb [wsframe.MaxHeaderLen]byte
	for {
		if _, err := io.ReadFull(pp.conn, hb[:2]); err != nil {
			return err
		}
		n := 2
		switch {
		case hb[1]&0x7f == 126:
			n += 2
		case hb[1]&0x7f == 127:
			n += 8
		}
		if hb[1]&0x80 != 0 {
			n += 4
		}
		if _, err := io.ReadFull(pp.conn, hb[2:n]); err != nil {
			return err
		}
		h, _, err := wsframe.ParseHeader(hb[:n])
		if err != nil {
			return err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(pp.conn, p); err != nil {
			return err
		}
		wsframe.Mask(h.Key, 0, p)
		switch h.Opcode {
		case wsframe.OpPing:
			if pp.answer {
				pp.write(wsframe.AppendControl(nil, wsframe.OpPong, p, pp.masked, [4]byte{1, 2, 3, 4}))
			}
		case wsframe.OpClose:
			ce, err := wsframe.ParseClose(p)
			if err != nil {
				return err
			}
			pp.closes <- ce
			pp.write(wsframe.AppendClose(nil, ce.Code, "", pp.masked, [4]byte{1, 2, 3, 4}))
			return nil
		default:
			pp.frames <- h
		}
	}
}

func (pp *pipePeer) write(b []byte) {
	go pp.conn.Write(b) // net.Pipe is unbuffered: never block the reader
}

// relayPipes runs a relay between two net.Pipe peers under a Proxy with
// opts, and returns the client and node peers and a channel that is
// closed when the relay has ended.
func relayPipes(t *testing.T, opts *Options, clientAnswers, nodeAnswers bool) (client, node *pipePeer, pc *proxyConn, ended chan struct{}) {
	cPeer, nPeer, pc, ended := relayConns(t, opts)
	return newPipePeer(cPeer, true, clientAnswers), newPipePeer(nPeer, false, nodeAnswers), pc, ended
}

// relayConns runs a relay under a Proxy with opts between two net.Pipes,
// and returns their far ends: the client's and the node's.
func relayConns(t *testing.T, opts *Options) (cPeer, nPeer net.Conn, pc *proxyConn, ended chan struct{}) {
	o := *opts
	o.HealthInterval = -1
	o.Logger = slog.New(slog.DiscardHandler)
	pc = pipeConn(t, &o)
	cPeer, nPeer, ended = runPipes(pc)
	return cPeer, nPeer, pc, ended
}

// pipeConn returns a connection of a proxy with opts, not yet running.
func pipeConn(t *testing.T, opts *Options) *proxyConn {
	p, err := New("ws://127.0.0.1:1", opts)
	if err != nil {
		t.Fatal(err)
	}
	pc := p.newConn("pipe")
	pc.b = p.backends[0]
	pc.b.conns.Add(1)
	return pc
}

// runPipes runs pc between two net.Pipes and returns their far ends, and
// a channel closed when the connection has ended.
func runPipes(pc *proxyConn) (cPeer, nPeer net.Conn, ended chan struct{}) {
	p := pc.p
	cGate, cPeer := net.Pipe()
	nGate, nPeer := net.Pipe()
	ended = make(chan struct{})
	go pc.run(&socket{conn: cGate, side: sideClient}, &socket{conn: nGate, side: sideNode}, func() {
		p.unregister(pc)
		cPeer.Close()
		nPeer.Close()
		close(ended)
	})
	return cPeer, nPeer, ended
}

func TestKeepaliveIdleTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const idle = 10 * time.Minute
		start := time.Now()
		client, node, pc, ended := relayPipes(t, &Options{IdleTimeout: idle, PingInterval: -1, WriteTimeout: -1}, true, true)
		// A message from the node resets the idle clock.
		time.Sleep(idle / 2)
		node.write([]byte{0x81, 2, 'h', 'i'})
		if h := <-client.frames; h.Opcode != wsframe.OpText || h.Length != 2 {
			t.Fatalf("client got %+v, want the node's text message", h)
		}
		ce := <-client.closes
		took := time.Since(start)
		if ce.Code != wsframe.StatusGoingAway || ce.Reason != errIdle.Error() {
			t.Errorf("client got close %+v, want 1001 %q", ce, errIdle)
		}
		if nce := <-node.closes; nce.Code != wsframe.StatusGoingAway {
			t.Errorf("node got close %+v, want 1001", nce)
		}
		// Ticks come every idle/2: the connection is idle from idle/2
		// on, so the tick at 3*idle/2 or the one after ends it.
		if took < idle*3/2 || took > idle*2 {
			t.Errorf("closed after %v, want between %v and %v", took, idle*3/2, idle*2)
		}
		<-ended
		if pc.end.by != sideGateway {
			t.Errorf("closed by %v, want gateway", pc.end.by)
		}
	})
}

func TestKeepalivePingTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name                       string
		clientAnswers, nodeAnswers bool
		by                         side
		clientCode, nodeCode       wsframe.StatusCode
	}{
		{"silent client", false, true, sideClient, -1, wsframe.StatusGoingAway},
		{"silent node", true, false, sideNode, wsframe.StatusServiceRestart, -1},
		{"both answer", true, true, sideGateway, wsframe.StatusGoingAway, wsframe.StatusGoingAway},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const interval = 30 * time.Second
				start := time.Now()
				_, _, pc, ended := relayPipes(t, &Options{PingInterval: interval, IdleTimeout: 10 * interval, WriteTimeout: -1}, tt.clientAnswers, tt.nodeAnswers)
				<-ended
				took := time.Since(start)
				want := 2 * interval // the first ping goes out after one interval, and is judged one later
				if tt.by == sideGateway {
					want = 10 * interval // idle, pings answered all along
				}
				if took != want {
					t.Errorf("ended after %v, want %v", took, want)
				}
				if e := pc.end; e.by != tt.by || e.clientCode != tt.clientCode || e.nodeCode != tt.nodeCode {
					t.Errorf("ended by %v with client %d node %d, want %v, %d, %d", e.by, e.clientCode, e.nodeCode, tt.by, tt.clientCode, tt.nodeCode)
				}
				if tt.by != sideGateway && !errors.Is(pc.end.err, errPingTimeout) {
					t.Errorf("error %v, want %v", pc.end.err, errPingTimeout)
				}
			})
		})
	}
}

// TestKeepaliveWriteStall: a client that stops reading while the node
// sends holds a write; after WriteTimeout the client is dropped and the
// node told 1001.
func TestKeepaliveWriteStall(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const timeout = time.Minute
		o := Options{WriteTimeout: timeout, PingInterval: -1}
		p, err := New("ws://127.0.0.1:1", &Options{HealthInterval: -1, WriteTimeout: o.WriteTimeout, PingInterval: o.PingInterval,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		pc := p.newConn("pipe")
		pc.b = p.backends[0]
		pc.b.conns.Add(1)
		cGate, cPeer := net.Pipe() // the client never reads cPeer
		nGate, nPeer := net.Pipe()
		node := newPipePeer(nPeer, false, true)
		ended := make(chan struct{})
		go pc.run(&socket{conn: cGate, side: sideClient}, &socket{conn: nGate, side: sideNode}, func() {
			p.unregister(pc)
			close(ended)
		})
		start := time.Now()
		var msg [8]byte
		binary.BigEndian.PutUint64(msg[:], 42)
		node.write(append([]byte{0x82, 8}, msg[:]...))
		if ce := <-node.closes; ce.Code != wsframe.StatusGoingAway {
			t.Errorf("node got %+v, want 1001", ce)
		}
		took := time.Since(start)
		<-ended
		cPeer.Close()
		nPeer.Close()
		if took < timeout || took > timeout*3/2 {
			t.Errorf("stalled write ended after %v, want %v to %v", took, timeout, timeout*3/2)
		}
		if e := pc.end; e.by != sideClient || !errors.Is(e.err, errWriteTimeout) || e.clientCode != -1 {
			t.Errorf("ended by %v (%v), client code %d; want the client, %v, no close frame", e.by, e.err, e.clientCode, errWriteTimeout)
		}
	})
}
