//go:build unix

package wssproxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// hookConn is a TCP connection whose reads can tell the relay that the
// socket has run dry. A blocking net.Conn read cannot: it waits without a
// word. The copier that relays from a hookConn sets onBlock, which Read
// calls when its read syscall finds nothing more to read, just before it
// waits for the socket (as nginx and HAProxy write once they read
// EAGAIN). The copier writes what it has gathered there: a client
// pipelining calls, each in a TLS record of its own that crypto/tls
// returns one per Read, costs the node one write per burst, not one per
// call. It costs no syscall of its own: Go's blocking read makes the same
// read that comes back empty before it waits.
//
// onBlock runs inside the read, between the empty read and the wait, so a
// readiness that comes while it writes is not lost. It returns false to
// make Read return errWouldBlock instead of waiting (the copier then lets
// go of a pooled buffer before it blocks).
//
// A hookConn comes from [NewListener] (a client's socket, under
// crypto/tls or not) or from the node dialer.
type hookConn struct {
	*net.TCPConn
	rc      syscall.RawConn
	onBlock func() bool // set while a copier reads; nil: a plain read

	// the read in progress, for readFn (bound once, so a read does not
	// allocate a closure)
	p       []byte
	n       int
	errno   error
	aborted bool
	readFn  func(fd uintptr) bool
}

// newHookConn wraps c if it is a TCP connection, and returns c otherwise.
func newHookConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	h := &hookConn{TCPConn: tc, rc: rc}
	h.readFn = h.readSyscall
	return h
}

// readHook returns the hookConn that a read of c ends up in (c itself, or
// the socket under c's TLS), or nil if there is none.
func readHook(c net.Conn) *hookConn {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = t.NetConn()
	}
	h, _ := c.(*hookConn)
	return h
}

// Read reads like a TCP connection's Read, calling onBlock as above.
func (c *hookConn) Read(p []byte) (int, error) {
	if c.onBlock == nil || len(p) == 0 {
		return c.TCPConn.Read(p)
	}
	c.p, c.n, c.errno, c.aborted = p, 0, nil, false
	err := c.rc.Read(c.readFn)
	n, errno := c.n, c.errno
	c.p = nil
	switch {
	case c.aborted:
		return 0, errWouldBlock
	case err != nil: // a deadline or a close: a *net.OpError already
		return 0, err
	case errno != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readSyscall is the read itself, called by the runtime's poller with
// the socket's descriptor until it returns true.
func (c *hookConn) readSyscall(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.p)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if c.onBlock() {
				return false // wait for the socket, then read again
			}
			c.aborted = true
			return true
		}
		c.n, c.errno = max(n, 0), err
		return true
	}
}

// errWouldBlock is what a hookConn's Read returns when its onBlock asks
// it not to wait. It is temporary, so that crypto/tls keeps the
// connection usable (and any part of a record it has read) after it.
var errWouldBlock error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "wssproxy: read would block" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }
