package wssproxy

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// keepalive is one connection's timer: it pings both peers, finds writes
// that have stalled (a peer that stopped reading) and idle connections.
// It holds no goroutine between ticks: each tick runs as a time.AfterFunc
// callback and re-arms the timer. Its time is the time package's, so a
// test runs it on a fake clock inside a testing/synctest bubble.
type keepalive struct {
	pc   *proxyConn
	tick time.Duration

	mu      sync.Mutex // guards timer and stopped
	timer   *time.Timer
	stopped bool
	running sync.Mutex // held while a tick runs, so stop can wait for it

	pinged atomic.Uint64    // the last ping's number, its payload
	ponged [2]atomic.Uint64 // by side (client, node): the last ping answered

	// touched only by ticks, which never overlap
	last      time.Time
	sincePing time.Duration
	idle      time.Duration
	lastMsgs  int64
	lastDone  [2]int64
	stalled   [2]time.Duration
}

// startKeepalive arms the timer, or returns nil when pings, write and idle
// timeouts are all off.
func startKeepalive(pc *proxyConn) *keepalive {
	o := &pc.p.opts
	tick := time.Duration(0)
	for _, d := range []time.Duration{o.PingInterval, o.WriteTimeout / 2, o.IdleTimeout / 2} {
		if d > 0 && (tick == 0 || d < tick) {
			tick = d
		}
	}
	if tick == 0 {
		return nil
	}
	k := &keepalive{pc: pc, tick: tick, last: time.Now()}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.timer = time.AfterFunc(tick, k.fire)
	return k
}

func (k *keepalive) stop() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.stopped = true
	k.timer.Stop()
	k.mu.Unlock()
	k.running.Lock() // wait for a tick in progress
	defer k.running.Unlock()
}

func (k *keepalive) fire() {
	k.running.Lock()
	defer k.running.Unlock()
	now := time.Now()
	elapsed := now.Sub(k.last)
	k.last = now
	k.pc.reportTraffic()
	if err := k.check(elapsed); err != nil {
		k.pc.finish(err)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.timer.Reset(k.tick)
	}
}

// check returns the error that should end the connection, if any.
func (k *keepalive) check(elapsed time.Duration) error {
	pc, o := k.pc, &k.pc.p.opts
	for d := range pc.stats {
		st := &pc.stats[d]
		started, done := st.writeStart.Load(), st.writeDone.Load()
		if started != done && done == k.lastDone[d] {
			k.stalled[d] += elapsed
		} else {
			k.stalled[d] = 0
		}
		k.lastDone[d] = done
		if o.WriteTimeout > 0 && k.stalled[d] >= o.WriteTimeout {
			dst := sideNode
			if direction(d) == toClient {
				dst = sideClient
			}
			return &sideError{dst, errWriteTimeout}
		}
	}
	msgs := pc.stats[toNode].msgs.Load() + pc.stats[toClient].msgs.Load()
	if msgs == k.lastMsgs {
		k.idle += elapsed
	} else {
		k.idle, k.lastMsgs = 0, msgs
	}
	if o.IdleTimeout > 0 && k.idle >= o.IdleTimeout {
		return &sideError{sideGateway, errIdle}
	}
	k.sincePing += elapsed
	if o.PingInterval > 0 && k.sincePing >= o.PingInterval {
		k.sincePing = 0
		if err := k.unanswered(); err != nil {
			return err
		}
		n := k.pinged.Add(1)
		// In a goroutine of its own: a write to a peer that stopped
		// reading must not hold up the tick that notices it.
		go k.ping(n)
	}
	return nil
}

// unanswered returns the error for a ping, sent a PingInterval ago, that
// a peer has not answered.
func (k *keepalive) unanswered() error {
	n := k.pinged.Load()
	cerr := k.ponged[sideClient].Load() < n
	nerr := k.ponged[sideNode].Load() < n
	// If both are silent, blame the one whose writes are stuck (a client
	// that stopped reading), else the node: its client then gets a close
	// frame (1012) and reconnects rather than being dropped unheard, which
	// also does least harm when an overloaded gateway missed both pongs.
	if nerr && cerr {
		if st := &k.pc.stats[toClient]; st.writeStart.Load() != st.writeDone.Load() {
			nerr = false
		} else {
			cerr = false
		}
	}
	switch {
	case nerr:
		return &sideError{sideNode, errPingTimeout}
	case cerr:
		return &sideError{sideClient, errPingTimeout}
	}
	return nil
}

// ping sends ping number n to both peers.
func (k *keepalive) ping(n uint64) {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], n)
	k.pc.node.out.control(wsframe.AppendControl(nil, wsframe.OpPing, p[:], true, newMaskKey()))
	k.pc.client.out.control(wsframe.AppendControl(nil, wsframe.OpPing, p[:], false, [4]byte{}))
}

// pong notes a pong from side s with payload p.
func (k *keepalive) pong(s side, p []byte) {
	if k == nil || len(p) != 8 {
		return
	}
	n := binary.BigEndian.Uint64(p)
	if n <= k.pinged.Load() && n > k.ponged[s].Load() {
		k.ponged[s].Store(n)
	}
}
