package wssproxy

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// dropNode is a node on raw sockets that streams frames to each client
// and, for a connection whose path is /n, vanishes in the middle of a
// frame with a reset.
type dropNode struct {
	srv   *httptest.Server
	wg    sync.WaitGroup
	drops atomic.Int64
}

func newDropNode(t *testing.T) *dropNode {
	n := &dropNode{}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(func() {
		n.srv.CloseClientConnections()
		n.srv.Close()
		n.wg.Wait()
	})
	return n
}

func (n *dropNode) serve(w http.ResponseWriter, r *http.Request) {
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	for range 4 { // a few whole text frames, then half of a long one
		brw.Write(frame(0x81, false, []byte(strings.Repeat("n", 1000))))
	}
	brw.Write([]byte{0x82, 126, 0xea, 0x60}) // binary, 60,000 bytes
	brw.Write(make([]byte, 20000))
	if brw.Flush() != nil {
		return
	}
	if r.URL.Path == "/n" {
		n.drops.Add(1)
		conn.(*net.TCPConn).SetLinger(0) // a reset, not a FIN
		return
	}
	// Until the gateway's close frame, which it answers at once.
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if readUntilClose(brw.Reader) == nil {
		conn.Write([]byte{0x88, 0})
	}
}

// readUntilClose reads frames from br until a close frame.
func readUntilClose(br *bufio.Reader) error {
	for {
		var hb [wsframe.MaxHeaderLen]byte
		if _, err := io.ReadFull(br, hb[:2]); err != nil {
			return err
		}
		n := 2 + map[byte]int{126: 2, 127: 8}[hb[1]&0x7f]
		if hb[1]&0x80 != 0 {
			n += 4
		}
		if _, err := io.ReadFull(br, hb[2:n]); err != nil {
			return err
		}
		h, _, err := wsframe.ParseHeader(hb[:n])
		if err != nil {
			return err
		}
		if _, err := br.Discard(int(h.Length)); err != nil {
			return err
		}
		if h.Opcode == wsframe.OpClose {
			return nil
		}
	}
}

// TestAbruptDisconnects: 5,000 connections end abruptly in the middle of
// a stream, a third each by a client reset inside a frame it sends, a
// client that closes its socket while the node streams, and a node reset
// inside a frame. Every connection's goroutines and buffers go with it.
func TestAbruptDisconnects(t *testing.T) {
	const total, workers = 5000, 32
	node := newDropNode(t)
	p, addr := serveGateway(t, node.srv.URL, &Options{Logger: discardLogger()}, 10*time.Second, nil)
	fp := takeFootprint()
	deadline := time.Now().Add(2 * time.Minute)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < total && time.Now().Before(deadline); i = next.Add(1) - 1 {
				if err := abruptConn(addr, int(i%3)); err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("connection %d: %v", i, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := next.Load(); n < total {
		t.Fatalf("only %d of %d connections in 2 minutes", n, total)
	}
	waitFor(t, "every connection to end", func() bool { return p.Conns() == 0 })
	if d := node.drops.Load(); d < total/3-1 {
		t.Errorf("node dropped %d connections, want %d", d, total/3)
	}
	fp.settle(t, heapSlack)
}

// abruptConn opens one connection through the gateway and ends it
// abruptly in the given way.
func abruptConn(addr string, how int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	path := [...]string{"/c", "/c", "/n"}[how]
	req := strings.Replace(wsRequest(""), "GET / ", "GET "+path+" ", 1)
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake: %s", resp.Status)
	}
	switch how {
	case 0: // reset inside a frame of our own
		f := frame(0x82, true, make([]byte, 10000))
		conn.Write(f[:len(f)/2])
		conn.(*net.TCPConn).SetLinger(0)
	case 1: // close while the node streams
		if _, err := io.ReadFull(br, make([]byte, 3000)); err != nil {
			return fmt.Errorf("reading the node's stream: %v", err)
		}
	case 2: // the node resets inside its frame: we hear of it
		if err := readUntilClose(br); err != nil {
			return fmt.Errorf("after the node vanished: %v", err)
		}
		conn.Write(frame(0x88, true, nil))
	}
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
