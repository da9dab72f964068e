package wssproxy

import (
	"context"
	"sync"
	"time"
)

// keepalive is one connection's timer: it pings both peers, finds writes
// that have stalled (a peer that stopped reading) and idle connections.
// It holds no goroutine between ticks: each tick runs as a time.AfterFunc
// callback and re-arms the timer.
type keepalive struct {
	pc   *proxyConn
	tick time.Duration

	mu      sync.Mutex // guards timer and stopped
	timer   *time.Timer
	stopped bool
	running sync.Mutex // held while a tick runs, so stop can wait for it

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
		return k.ping(o.PingInterval)
	}
	return nil
}

// ping pings both peers at once and waits up to timeout for the pongs.
func (k *keepalive) ping(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- k.pc.nc.Ping(ctx) }()
	cerr := k.pc.cc.Ping(ctx)
	nerr := <-nodeErr
	// If both are silent, blame the one whose writes are stuck (a client
	// that stopped reading), else the node: its client then gets a close
	// frame (1012) and reconnects rather than being dropped unheard, which
	// also does least harm when an overloaded gateway missed both pongs.
	if nerr != nil && cerr != nil {
		if st := &k.pc.stats[toClient]; st.writeStart.Load() != st.writeDone.Load() {
			nerr = nil
		} else {
			cerr = nil
		}
	}
	switch {
	case nerr != nil:
		return &sideError{sideNode, errPingTimeout}
	case cerr != nil:
		return &sideError{sideClient, errPingTimeout}
	}
	return nil
}
