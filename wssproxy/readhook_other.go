//go:build !unix

package wssproxy

import (
	"errors"
	"net"
)

// hookConn cannot be had on this platform: the relay sends what it
// gathered before every read instead.
type hookConn struct {
	onBlock func() bool
}

func (*hookConn) Read([]byte) (int, error) { panic("unreachable") }

func newHookConn(c net.Conn) net.Conn { return c }

func readHook(net.Conn) *hookConn { return nil }

var errWouldBlock = errors.New("wssproxy: read would block") // never returned here
