package wssproxy

import (
	"crypto/tls"
	"syscall"
	"unsafe"
)

// pending returns how many bytes c's socket has received that no read has
// taken yet (FIONREAD), or 0 if that cannot be told. For a TLS
// connection it is the socket under it.
func pending(c any) int {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	rc.Control(func(fd uintptr) {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		if errno != 0 {
			n = 0
		}
	})
	return int(n)
}
