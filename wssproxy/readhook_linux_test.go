package wssproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/wssgate/wssgate/certs"
)

// hookPair returns a client connection and the server's end of it, as
// NewListener accepts it.
func hookPair(t *testing.T) (client net.Conn, server *hookConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hl := NewListener(ln)
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := hl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, ok := c.(*hookConn)
	if !ok {
		t.Fatalf("NewListener accepted a %T, want *hookConn", c)
	}
	return client, h
}

// waitPending waits until sock has received n unread bytes. Loopback
// delivers a write before it returns, so this is quick; the loop is
// bounded all the same.
func waitPending(t *testing.T, sock net.Conn, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); pending(sock) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("socket holds %d unread bytes, want %d", pending(sock), n)
		}
	}
}

// TestHookConnOnBlock: onBlock is called exactly when the socket has
// nothing more to read, before the read waits; returning false makes
// the read come back with errWouldBlock, and the connection goes on.
func TestHookConnOnBlock(t *testing.T) {
	client, h := hookPair(t)
	blocked := make(chan struct{}, 10)
	wait := true
	h.onBlock = func() bool { blocked <- struct{}{}; return wait }

	client.Write([]byte("abc"))
	waitPending(t, h, 3)
	buf := make([]byte, 16)
	if n, err := h.Read(buf); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("Read = %q, %v; want abc", buf[:n], err)
	}
	if len(blocked) != 0 {
		t.Fatalf("onBlock called %d times while data was there", len(blocked))
	}

	wait = false
	if n, err := h.Read(buf); n != 0 || err != errWouldBlock {
		t.Fatalf("Read on a dry socket with onBlock false = %d, %v; want errWouldBlock", n, err)
	}
	<-blocked

	wait = true
	got := make(chan string, 1)
	go func() {
		n, err := h.Read(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	<-blocked // the read is now waiting for the socket
	client.Write([]byte("de"))
	if s := <-got; s != "de" {
		t.Fatalf("Read after waiting = %q, want de", s)
	}

	client.Close()
	if _, err := h.Read(buf); err == nil || err.Error() != "EOF" {
		t.Fatalf("Read after the peer closed = %v, want EOF", err)
	}
}

// TestHookConnUnderTLS: under crypto/tls, records already read from the
// socket come back without onBlock; a dry socket calls it once, and
// errWouldBlock leaves the TLS connection usable.
func TestHookConnUnderTLS(t *testing.T) {
	client, h := hookPair(t)
	src, err := certs.NewSelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countConn{Conn: client}
	srv := tls.Server(h, certs.TLSConfig(src))
	cli := tls.Client(counted, &tls.Config{InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	blocked := 0
	wait := false
	h.onBlock = func() bool { blocked++; return wait }

	const records = 20
	start := counted.n
	for i := range records {
		if _, err := cli.Write([]byte{byte('a' + i)}); err != nil { // one record each
			t.Fatal(err)
		}
	}
	waitPending(t, h, counted.n-start)
	buf := make([]byte, 64)
	var got []byte
	for range records {
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if want := "abcdefghijklmnopqrst"; string(got) != want || blocked != 0 {
		t.Fatalf("read %q with onBlock called %d times; want %q and 0", got, blocked, want)
	}
	if n, err := srv.Read(buf); n != 0 || !errors.Is(err, errWouldBlock) || blocked != 1 {
		t.Fatalf("Read of a dry socket = %d, %v, onBlock %d times; want errWouldBlock once", n, err, blocked)
	}
	wait = true
	go cli.Write([]byte("more"))
	n, err := srv.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte("more")) {
		t.Fatalf("Read after errWouldBlock = %q, %v; want more", buf[:n], err)
	}
}

// countConn counts the bytes written to a connection.
type countConn struct {
	net.Conn
	n int
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n += n
	return n, err
}

// TestKillWhileFlushingInOnBlock: kill returns while a copier is stuck
// writing to a node that stopped reading from inside its read of the
// client (where a socket's Close would wait for it).
func TestKillWhileFlushingInOnBlock(t *testing.T) {
	_, clientSide := hookPair(t)
	_, nodeSide := hookPair(t) // whose peer never reads
	entered := make(chan struct{})
	clientSide.onBlock = func() bool {
		close(entered)
		nodeSide.Write(make([]byte, 64<<20)) // more than loopback buffers hold
		return false
	}
	read := make(chan error, 1)
	go func() {
		_, err := clientSide.Read(make([]byte, 16))
		read <- err
	}()
	<-entered
	pc := &proxyConn{client: &socket{conn: clientSide}, node: &socket{conn: nodeSide}}
	killed := make(chan struct{})
	go func() { pc.kill(); close(killed) }()
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("kill did not return in 20s: Close waited on a read stuck in onBlock")
	}
	if err := <-read; err == nil {
		t.Fatal("the read on a killed connection returned no error")
	}
}
