//go:build !linux

package wssproxy

import (
	"net"
	"testing"
)

// closedAddr returns a loopback address nothing listens on: a listener's
// port, let go. Another listener may be given it later.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
