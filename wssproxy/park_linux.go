package wssproxy

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
)

// pollFD is the socket under one side of a connection, for the poller.
type pollFD struct {
	rc         syscall.RawConn
	registered bool // added to the poller's epoll set; only the copier touches it
}

// newPollFD returns c's socket, or nil if it has none (a copier on it
// then never parks).
func newPollFD(c net.Conn) *pollFD {
	var nc any = c
	if tc, ok := c.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &pollFD{rc: rc}
}

// poller watches the sockets of parked copiers in one epoll set, and
// starts a copier's goroutine again when its socket has something to
// read (or has closed). Its own goroutine runs only while a copier is
// parked, so an idle process (or a test's end) holds none.
type poller struct {
	mu   sync.Mutex
	epfd int // the epoll set; 0 until first use
	// the epoll set as Go's poller sees it: the loop waits in the runtime
	// for it to be readable, not in a blocking epoll_wait, which would hold
	// a P (with GOMAXPROCS 1, the only one) until sysmon took it back
	set     syscall.RawConn
	setFile *os.File
	wake    [2]int
	parked  map[uint64]*copier // by copier id
	running bool               // the poller goroutine is running
}

var thePoller poller

const epollFlags = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// park adds c's source socket to the epoll set (or re-arms it: the
// registration is one-shot), level-triggered, so bytes that came before
// it wake c at once.
func (p *poller) park(c *copier) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epfd == 0 {
		if err := p.init(); err != nil {
			return err
		}
	}
	pf := c.pfd
	ev := syscall.EpollEvent{Events: epollFlags, Fd: int32(uint32(c.id)), Pad: int32(uint32(c.id >> 32))}
	op := syscall.EPOLL_CTL_ADD
	if pf.registered {
		op = syscall.EPOLL_CTL_MOD
	}
	var cerr error
	// Control holds the socket open, so its descriptor cannot be reused
	// by another connection meanwhile.
	if err := pf.rc.Control(func(fd uintptr) { cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	pf.registered = true
	p.parked[c.id] = c
	if !p.running {
		p.running = true
		go p.loop()
	}
	return nil
}

func (p *poller) init() error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	var w [2]int
	if err := syscall.Pipe2(w[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // id 0: the wake pipe
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(w[0])
		syscall.Close(w[1])
		return err
	}
	// Non-blocking, so os.NewFile hands it to the runtime's poller (an
	// epoll set is readable while it has events ready).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		syscall.Close(w[0])
		syscall.Close(w[1])
		return err
	}
	f := os.NewFile(uintptr(epfd), "wssproxy-poller")
	set, err := f.SyscallConn()
	if err != nil {
		f.Close()
		syscall.Close(w[0])
		syscall.Close(w[1])
		return err
	}
	p.epfd, p.set, p.setFile, p.wake, p.parked = epfd, set, f, w, make(map[uint64]*copier)
	return nil
}

// claim takes c off the parked list, if it is there, so that the caller
// starts it; its registration stays, disarmed or soon to be (an event
// for it finds no copier and is dropped).
func (p *poller) claim(c *copier) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.parked[c.id] != c {
		return false
	}
	delete(p.parked, c.id)
	if len(p.parked) == 0 && p.running {
		syscall.Write(p.wake[1], []byte{0}) // let the goroutine see it can end
	}
	return true
}

func (p *poller) loop() {
	var evs [128]syscall.EpollEvent
	var drain [64]byte
	for {
		var n int
		var err error
		if rerr := p.set.Read(func(uintptr) bool {
			for {
				n, err = syscall.EpollWait(p.epfd, evs[:], 0) // never blocks
				if err != syscall.EINTR {
					return n != 0 || err != nil // nothing ready: wait in the runtime
				}
			}
		}); rerr != nil {
			err = rerr
		}
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Cannot happen with a valid set; if it does, no copier is
			// left parked for good.
			p.mu.Lock()
			for id, c := range p.parked {
				delete(p.parked, id)
				go c.run()
			}
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		for _, ev := range evs[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				for {
					if k, _ := syscall.Read(p.wake[0], drain[:]); k <= 0 {
						break
					}
				}
				continue
			}
			if c, ok := p.parked[id]; ok {
				delete(p.parked, id)
				go c.run()
			}
		}
		if len(p.parked) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}
