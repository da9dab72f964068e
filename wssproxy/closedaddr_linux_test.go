//go:build linux

package wssproxy

import (
	"fmt"
	"syscall"
	"testing"
)

// closedAddr returns a loopback address where a dial is refused until the
// test ends. The port is held by a socket that is bound but never
// listens: no listener of this or a parallel test can be given it, as one
// could a port a closed listener let go (the proxy under test once dialed
// itself that way).
func closedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
