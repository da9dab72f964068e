package wssproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Parking: a copier with nothing to do holds no goroutine. When its idle
// read (nothing unread, no frame in progress) has waited parkAfter, the
// read's deadline ends it; the copier then hands its source socket to the
// poller (an epoll set on Linux) and its goroutine exits. Bytes arriving,
// the peer closing, or the gateway ending the connection start it again
// where it left off. A copier that has never read parks at its first idle
// read, so a connection opened and left idle costs no goroutine at all.
// The poller waits in the runtime's own poller, not in a blocking
// epoll_wait, so parking and waking cost a goroutine start and two epoll
// calls: handshakes/s (each new connection parks before its first call)
// is the same as with parking only after a delay.
//
// A read that times out leaves crypto/tls as it was (a timeout is not a
// sticky error there, and a record half read stays buffered), and one
// that returns no bytes means crypto/tls holds none unread, so the socket
// is all the poller has to watch. The deadline is set on an idle read only
// when the one already set is less than parkAfter/2 away, so a busy
// connection sets it at most about twice a second per direction.
//
// Elsewhere than Linux, or on a connection that is not a socket, copiers
// block in their reads as they always did.

// parkAfter is how long an idle read waits before its copier parks.
const parkAfter = time.Second

// errParked ends a copier's loop when it has parked.
var errParked = errors.New("wssproxy: copier parked")

var copierIDs atomic.Uint64

// parking is a copier's state for parking.
type parking struct {
	id     uint64    // the poller's name for the copier, never 0
	pfd    *pollFD   // src's socket; nil if the copier does not park
	armed  bool      // an idle read's deadline has been set
	parkAt time.Time // that deadline
}

// idlePool holds the small buffers copiers block on: a copier holds one
// only while it runs, not while parked.
var idlePool = sync.Pool{New: func() any { return new([idleReadSize]byte) }}

func (c *copier) takeIdle() {
	if c.idle == nil {
		c.idle = idlePool.Get().(*[idleReadSize]byte)
		if c.pooled == nil {
			c.buf = c.idle[:]
		}
	}
}

// putIdle returns the small buffer, which holds nothing unread.
func (c *copier) putIdle() {
	if c.idle != nil && c.pooled == nil {
		idlePool.Put(c.idle)
		c.idle, c.buf = nil, nil
	}
}

func (c *copier) initParking() {
	c.id = copierIDs.Add(1)
	c.pfd = newPollFD(c.src.conn)
}

// readSrc reads from the copier's source, parking the copier when the read
// is idle (idle) and times out. It returns errParked when it has parked.
func (c *copier) readSrc(p []byte, idle bool) (int, error) {
	if c.pfd == nil {
		return c.src.conn.Read(p)
	}
	for {
		if idle {
			c.armPark()
		}
		n, err := c.src.conn.Read(p)
		if n > 0 || err == nil || err == errWouldBlock || !isDeadline(err) {
			return n, err
		}
		park, fail := c.timedOut(idle)
		if fail {
			return n, err
		}
		if park {
			// What was gathered for dst goes first: with a hookConn, a
			// read whose deadline has passed never calls onBlock.
			if err := c.dst.out.flush(); err != nil {
				c.flushErr = err
				return 0, errWouldBlock // read returns flushErr
			}
			return 0, errParked
		}
	}
}

// isDeadline reports whether err is a read's deadline passing, as
// net.Conn and crypto/tls return it (not wrapped).
func isDeadline(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// armPark sets the idle read's deadline: at once for a copier's first idle
// read, parkAfter from now when the deadline set is nearer than half that.
func (c *copier) armPark() {
	now := time.Now()
	at := time.Unix(1, 0)
	if c.armed {
		if c.parkAt.Sub(now) >= parkAfter/2 {
			return
		}
		at = now.Add(parkAfter)
	}
	pc := c.pc
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	if pc.ending.Load() {
		return // the deadline is closeSides' now
	}
	c.armed, c.parkAt = true, at
	c.src.conn.SetReadDeadline(at)
}

// timedOut handles a read that timed out with no bytes: it reports whether
// the copier should park (the read was idle and the deadline was the
// copier's), or whether the timeout is the close handshake's (closeSides
// set it), which fails the read. Otherwise the read goes on, with a
// deadline pushed back.
func (c *copier) timedOut(idle bool) (park, fail bool) {
	pc := c.pc
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	switch {
	case pc.closeDeadline[c.src.side]:
		return false, true
	case pc.ending.Load():
		// closeSides is about to set its deadline; until it does, this
		// one stands for it.
		c.src.conn.SetReadDeadline(time.Now().Add(closeTimeout))
		return false, false
	case idle:
		return true, false
	}
	// a frame in progress waits on: the copier parks only when idle
	c.armed, c.parkAt = true, time.Now().Add(parkAfter)
	c.src.conn.SetReadDeadline(c.parkAt)
	return false, false
}

// runUntilParked runs the copier's loop until it ends, and returns the
// error that ended it, or until it parks, and returns nil: another
// goroutine may then be running the copier already.
func (c *copier) runUntilParked() error {
	for {
		c.takeIdle()
		if c.hook != nil {
			c.hook.onBlock = c.onBlock
		}
		err := c.loop()
		if c.hook != nil {
			c.hook.onBlock = nil
		}
		if err != errParked {
			return err
		}
		c.putIdle()
		if c.park() {
			return nil // the copier is the poller's now: touch nothing
		}
	}
}

// park hands the copier to the poller, unless the connection is ending. It
// reports whether it did; the copier's goroutine must then return at once.
func (c *copier) park() bool {
	pc := c.pc
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	if pc.ending.Load() {
		return false
	}
	if err := thePoller.park(c); err != nil {
		// Not parked (the socket closed, or no epoll): block as before.
		c.pfd = nil
		c.src.conn.SetReadDeadline(time.Time{})
		return false
	}
	return true
}

// wakeParked starts again the copiers that are parked, for a connection
// that is ending: each reads on to its peer's answer, or to an error on a
// socket closed under it.
func (pc *proxyConn) wakeParked() {
	pc.parkMu.Lock()
	defer pc.parkMu.Unlock()
	for _, c := range pc.copiers {
		if c != nil && c.pfd != nil && thePoller.claim(c) {
			go c.run()
		}
	}
}
