package wssproxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// direction is the way a message travels.
type direction int

const (
	toNode   direction = iota // client to node
	toClient                  // node to client
)

// side names a party to a connection.
type side int

const (
	sideClient side = iota
	sideNode
	sideGateway // the gateway itself ended the connection (idle, shutdown)
)

func (s side) String() string {
	return [...]string{"client", "node", "gateway"}[s]
}

// sideError records which side an error came from.
type sideError struct {
	side side
	err  error
}

func (e *sideError) Error() string { return e.side.String() + ": " + e.err.Error() }
func (e *sideError) Unwrap() error { return e.err }

// proxyConn is one client connection relayed to one node connection.
type proxyConn struct {
	p     *Proxy
	b     *backend // the node, once dialed
	key   string   // the client, as Options.Key names it
	start time.Time
	sess  *session     // nil when messages need no inspection
	dfl   *deflateConn // nil unless the client negotiated permessage-deflate
	warm  bool         // the node connection was dialed ahead (Options.NodeWarmConns)

	ctx    context.Context // ends when the connection does; for waits only
	cancel context.CancelFunc

	mu           sync.Mutex // guards client, node and copiers until run sets them
	client, node *socket
	copiers      [2]*copier // by direction, once run starts them

	draining  atomic.Bool  // Shutdown has begun closing this connection
	ending    atomic.Bool  // finish has begun
	closeSent atomic.Int32 // the close code drain sent the client, or 0
	drainOnce sync.Once

	stats    [2]dirStats // indexed by direction
	reported [2][2]int64 // msgs and bytes already passed to Metrics

	endOnce sync.Once
	end     closeInfo // set in endOnce

	ka *keepalive

	live   atomic.Int32 // copiers not yet ended
	done   func()       // called once the connection has ended
	parkMu sync.Mutex   // orders parking with the end of the connection (park.go)
	// closeDeadline[side] is set once closeSides has set that side's read
	// deadline for the close handshake, under parkMu.
	closeDeadline [2]bool
}

// dirStats counts one direction's traffic. Only its copier writes msgs
// and bytes.
type dirStats struct {
	msgs, bytes atomic.Int64
	// writes started and finished, for the write-stall check
	writeStart, writeDone atomic.Int64
}

// run relays between the client and node sockets until either ends, then
// closes both, logs the connection and calls done. It returns at once:
// the copiers run in goroutines of their own while they have something to
// do, and park (park.go) while they have not; the last to end finishes.
func (pc *proxyConn) run(client, node *socket, done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	client.out = newGather(client.conn, &pc.stats[toClient])
	node.out = newGather(node.conn, &pc.stats[toNode])
	if pc.sess != nil {
		pc.sess.beforeWait = func() { node.out.flush() }
	}
	pc.mu.Lock() // drain reads these under it
	pc.ctx, pc.cancel = ctx, cancel
	pc.client, pc.node = client, node
	pc.copiers = [2]*copier{newCopier(pc, toNode, client, node), newCopier(pc, toClient, node, client)}
	pc.mu.Unlock()
	pc.done = done
	pc.p.metrics.ConnOpened(pc.b.host)
	pc.live.Store(2)
	if pc.draining.Load() {
		// Shutdown came during the handshake: both sides get 1001 at
		// once, and the copiers wait for their answers as after any close.
		pc.finish(&sideError{sideGateway, errShutdown})
	} else {
		pc.ka = startKeepalive(pc)
	}
	go pc.copiers[toNode].run()
	pc.copiers[toClient].run()
}

// copierDone is called as each copier ends; the last one ends the
// connection.
func (pc *proxyConn) copierDone() {
	if pc.live.Add(-1) != 0 {
		return
	}
	pc.ka.stop()
	pc.client.out.drop()
	pc.node.out.drop()
	pc.client.conn.Close()
	pc.node.conn.Close()
	pc.closed()
	pc.cancel()
	pc.done()
}

// seesWhole reports whether the session must see the messages of
// direction dir whole: every client message, and node messages while it
// waits for a reply.
func (pc *proxyConn) seesWhole(dir direction) bool {
	return pc.sess != nil && (dir == toNode || pc.sess.watchNode())
}

// closed reports a finished connection to the logs and metrics.
func (pc *proxyConn) closed() {
	pc.reportTraffic()
	pc.logClose()
	pc.p.metrics.ConnClosed(pc.b.host, ConnEnd{
		Duration:   time.Since(pc.start),
		ClosedBy:   pc.end.by.String(),
		ClientCode: int(pc.end.clientCode),
	})
}

// reportTraffic passes the traffic since the last report to Metrics. It
// runs on keepalive ticks and at the end, never concurrently.
func (pc *proxyConn) reportTraffic() {
	for d := range pc.stats {
		st := &pc.stats[d]
		msgs, bytes := st.msgs.Load(), st.bytes.Load()
		dm, db := msgs-pc.reported[d][0], bytes-pc.reported[d][1]
		if dm == 0 && db == 0 {
			continue
		}
		pc.reported[d] = [2]int64{msgs, bytes}
		pc.p.metrics.Traffic(pc.b.host, direction(d) == toNode, dm, db)
	}
}

// drain closes the connection gracefully for Shutdown: no more messages are
// written to the client after the one in flight, the client is sent 1001,
// and what it sent before seeing that still reaches the node: the
// client-to-node copier goes on until the client's answering close frame
// ends it, and finish closes the node. A client that does not answer
// within closeTimeout is dropped. The close frame is the last frame the
// client gets: neither a second Shutdown nor the echo of the client's
// close sends another (RFC 6455 section 5.5.1).
func (pc *proxyConn) drain() {
	if h := pc.p.testHookDrain; h != nil {
		h()
	}
	pc.drainOnce.Do(pc.drainNow)
}

func (pc *proxyConn) drainNow() {
	pc.draining.Store(true)
	pc.mu.Lock()
	client, ctx := pc.client, pc.ctx
	pc.mu.Unlock()
	if client == nil {
		return // still handshaking; run sees draining and stops
	}
	// Recorded first: the client may answer before the write returns.
	pc.closeSent.Store(int32(wsframe.StatusGoingAway))
	if err := client.out.closeAfterMessage(wsframe.AppendClose(nil, wsframe.StatusGoingAway, reasonShutdown, false, [4]byte{})); err != nil {
		pc.closeSent.Store(0)
		pc.kill()
		return
	}
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		pc.kill()
	}
}

// closeTimeout bounds the wait for a peer's answer to a close frame, as
// the websocket package's own close handshake does.
const closeTimeout = 5 * time.Second

// kill drops both sides without handshakes.
func (pc *proxyConn) kill() {
	pc.draining.Store(true)
	pc.mu.Lock()
	client, node := pc.client, pc.node
	pc.mu.Unlock()
	if client != nil {
		// A copier may be writing one side from inside its read of the
		// other (hookConn.onBlock), and a socket's Close waits for the
		// reads on it to return: fail every write first, so neither
		// Close waits on a peer that stopped reading.
		past := time.Unix(1, 0)
		client.conn.SetWriteDeadline(past)
		node.conn.SetWriteDeadline(past)
		client.conn.Close()
		node.conn.Close()
		pc.wakeParked()
	}
}
