package wssproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

type atomicInt = atomic.Int64

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

// bufSize is the copy buffer: a message that fits is sent as one frame,
// longer ones are streamed through it frame by frame.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// run splices cc (client) and nc (node) until either ends, then closes both
// and logs the connection. It runs the node-to-client copier itself and
// the client-to-node copier in a second goroutine, and waits for both.
func (pc *proxyConn) run(cc, nc *websocket.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc.toClient.Lock() // drain reads these under it
	draining := pc.draining
	pc.cc, pc.nc = cc, nc
	pc.ctx, pc.cancel = ctx, cancel
	pc.toClient.Unlock()
	pc.p.metrics.ConnOpened(pc.b.host)
	defer pc.closed()
	if draining {
		pc.finish(&sideError{sideGateway, errShutdown})
		return
	}
	pc.ka = startKeepalive(pc)
	errc := make(chan error, 1)
	go func() { errc <- pc.copyLoop(toNode) }()
	pc.finish(pc.copyLoop(toClient)) // the handler goroutine is the second copier
	pc.finish(<-errc)
	pc.ka.stop()
}

// link pairs the two sockets: each flushes the other's held writes
// before its reads block.
func (pc *proxyConn) link(client, node *sideConn) {
	pc.nside = node
	if pc.sess != nil {
		pc.sess.beforeWait = node.flush
	}
	client.peer, node.peer = node, client
	client.stats, node.stats = &pc.stats[toClient], &pc.stats[toNode]
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

// copyLoop copies messages in direction dir until an error.
func (pc *proxyConn) copyLoop(dir direction) error {
	src, srcSide := pc.cc, sideClient
	if dir == toClient {
		src, srcSide = pc.nc, sideNode
	}
	ctx := context.Background() // cancellation is by closing the conns
	for {
		typ, r, err := src.Reader(ctx)
		if err != nil {
			err = &sideError{srcSide, err}
			pc.finish(err)
			return err
		}
		if err := pc.forward(dir, typ, r); err != nil {
			pc.finish(err)
			return err
		}
	}
}

// forward copies one message. A message that fits the buffer is written as
// one frame; a longer one is streamed, so memory stays bounded whatever its
// size.
func (pc *proxyConn) forward(dir direction, typ websocket.MessageType, r io.Reader) error {
	srcSide := sideClient
	if dir == toClient {
		srcSide = sideNode
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return pc.deliver(dir, typ, buf[:n])
	case err != nil:
		return &sideError{srcSide, err}
	}
	if pc.sess != nil && (dir == toNode || pc.sess.watchNode()) {
		// The session must see it whole. ReadLimit bounds it.
		whole, err := readRest(buf, r)
		if err != nil {
			return &sideError{srcSide, err}
		}
		defer putBig(whole)
		return pc.deliver(dir, typ, whole)
	}
	return pc.stream(dir, typ, buf, r)
}

// readRest returns head followed by the rest of r, in a buffer from
// bigPool; the caller returns it with putBig.
func readRest(head []byte, r io.Reader) ([]byte, error) {
	b := getBig(4 * len(head))[:len(head)]
	copy(b, head)
	for {
		if len(b) == cap(b) {
			nb := getBig(2 * cap(b))[:len(b)]
			copy(nb, b)
			putBig(b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			putBig(b)
			return nil, err
		}
	}
}

// bigPools hold buffers for whole messages longer than bufSize, by size
// class (128 KiB, 256 KiB, ... 32 MiB), so inspecting large messages does
// not allocate per message.
var bigPools [9]sync.Pool

func bigClass(n int) int {
	c := 0
	for size := 4 * bufSize; size < n && c < len(bigPools)-1; size *= 2 {
		c++
	}
	return c
}

func getBig(n int) []byte {
	c := bigClass(n)
	if size := (4 * bufSize) << c; size >= n {
		if p, ok := bigPools[c].Get().(*[]byte); ok {
			return (*p)[:0]
		}
		return make([]byte, 0, size)
	}
	return make([]byte, 0, n) // beyond the largest class: not pooled
}

func putBig(b []byte) {
	c := bigClass(cap(b))
	if (4*bufSize)<<c != cap(b) {
		return
	}
	b = b[:0]
	bigPools[c].Put(&b)
}

// deliver writes one whole message, through the session if there is one.
func (pc *proxyConn) deliver(dir direction, typ websocket.MessageType, msg []byte) error {
	if dir == toNode && typ == websocket.MessageText && !utf8.Valid(msg) {
		return &sideError{sideClient, errBadUTF8}
	}
	if pc.sess == nil {
		return pc.write(dir, typ, msg, true)
	}
	if dir == toClient {
		return pc.write(dir, typ, pc.sess.nodeMessage(msg), true)
	}
	v := pc.sess.clientMessage(pc.ctx, msg)
	if v.close != nil {
		return &sideError{sideClient, v.close}
	}
	if v.reply != nil {
		if err := pc.write(toClient, websocket.MessageText, v.reply, false); err != nil {
			return err
		}
	}
	if v.forward != nil {
		return pc.write(toNode, typ, v.forward, true)
	}
	return nil
}

// write sends msg as one frame in direction dir.
//
// gather is set when the copier of direction dir writes: the bytes may be
// held back until that copier would block reading (see sideConn). Others
// (the gateway answering a client from the other copier) write through.
func (pc *proxyConn) write(dir direction, typ websocket.MessageType, msg []byte, gather bool) error {
	dst, dstSide, side := pc.nc, sideNode, pc.nside
	if dir == toClient {
		dst, dstSide, side = pc.cc, sideClient, pc.cside.Load()
		pc.toClient.Lock()
		defer pc.toClient.Unlock()
		if pc.draining {
			return nil // the client has been sent its close frame
		}
	}
	st := &pc.stats[dir]
	st.writeStart.Add(1)
	if gather {
		side.hold(true)
	}
	err := dst.Write(context.Background(), typ, msg)
	if gather {
		side.hold(false)
	}
	st.writeDone.Add(1)
	if err != nil {
		return &sideError{dstSide, err}
	}
	st.msgs.Add(1)
	st.bytes.Add(int64(len(msg)))
	return nil
}

// stream copies a message longer than buf: the full buf first, then the
// rest of r, frame by frame.
func (pc *proxyConn) stream(dir direction, typ websocket.MessageType, buf []byte, r io.Reader) error {
	dst, dstSide, srcSide := pc.nc, sideNode, sideClient
	if dir == toClient {
		dst, dstSide, srcSide = pc.cc, sideClient, sideNode
		pc.toClient.Lock()
		defer pc.toClient.Unlock()
		if pc.draining {
			_, err := io.CopyBuffer(io.Discard, r, buf)
			return wrapSide(srcSide, err)
		}
	}
	st := &pc.stats[dir]
	st.writeStart.Add(1)
	defer st.writeDone.Add(1)
	w, err := dst.Writer(context.Background(), typ)
	if err != nil {
		return &sideError{dstSide, err}
	}
	total := int64(0)
	chunk := buf
	var text *utf8Stream // validates a client's text message
	if dir == toNode && typ == websocket.MessageText {
		text = &utf8Stream{}
	}
	for {
		if text != nil && !text.write(chunk) {
			return &sideError{sideClient, errBadUTF8}
		}
		if _, err := w.Write(chunk); err != nil {
			return &sideError{dstSide, err}
		}
		total += int64(len(chunk))
		n, err := r.Read(buf)
		chunk = buf[:n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return &sideError{srcSide, err}
		}
	}
	if text != nil && (!text.write(chunk) || !text.end()) {
		return &sideError{sideClient, errBadUTF8}
	}
	if len(chunk) > 0 {
		if _, err := w.Write(chunk); err != nil {
			return &sideError{dstSide, err}
		}
		total += int64(len(chunk))
	}
	if err := w.Close(); err != nil {
		return &sideError{dstSide, err}
	}
	st.msgs.Add(1)
	st.bytes.Add(total)
	return nil
}

func wrapSide(s side, err error) error {
	if err == nil {
		return nil
	}
	return &sideError{s, err}
}

// closeInfo records how a connection ended, for the log line.
type closeInfo struct {
	by           side
	clientCode   websocket.StatusCode
	clientReason string
	nodeCode     websocket.StatusCode
	nodeReason   string
	err          error
}

// finish closes both sides once, choosing codes from the first error: the
// side that failed is cleaned up, and the other gets a close frame with a
// code that says what happened.
func (pc *proxyConn) finish(err error) {
	pc.endOnce.Do(func() {
		if pc.cancel != nil {
			pc.cancel()
		}
		pc.end = pc.classify(err)
		sent := pc.sentClose()
		if sent != 0 { // drained: the client has its close frame already
			pc.end.clientCode = -1
		}
		pc.closeSides(pc.end)
		if sent != 0 {
			pc.end.by, pc.end.clientCode, pc.end.clientReason = sideGateway, sent, reasonShutdown
		}
	})
}

// classify maps the first error to close codes for both sides. A code of
// -1 means the side is already closed or gone; it gets no close frame.
func (pc *proxyConn) classify(err error) closeInfo {
	var se *sideError
	if !errors.As(err, &se) {
		se = &sideError{sideGateway, err}
	}
	ci := closeInfo{by: se.side, err: se.err, clientCode: -1, nodeCode: -1}
	peerCode := websocket.CloseStatus(se.err)
	var ce websocket.CloseError
	errors.As(se.err, &ce)
	switch se.side {
	case sideClient:
		switch {
		case peerCode != -1: // the client closed: pass its code on
			ci.nodeCode, ci.nodeReason = peerCode, ce.Reason
		case errors.Is(se.err, websocket.ErrMessageTooBig):
			ci.clientCode, ci.clientReason = websocket.StatusMessageTooBig, "message too big"
			ci.nodeCode, ci.nodeReason = websocket.StatusGoingAway, "client closed: message too big"
		case errors.As(se.err, new(*policyClose)):
			pcl := &policyClose{}
			errors.As(se.err, &pcl)
			ci.clientCode, ci.clientReason = pcl.code, pcl.reason
			ci.nodeCode, ci.nodeReason = websocket.StatusGoingAway, "client closed by gateway"
		default: // vanished, broke the protocol, or stopped reading
			ci.nodeCode, ci.nodeReason = websocket.StatusGoingAway, "client went away"
		}
	case sideNode:
		switch {
		case peerCode == websocket.StatusGoingAway && !pc.isDraining():
			// The node is shutting down (a restart, an upgrade): the
			// gateway is not, so tell the client to come back (1012), to
			// another node, and take this one out until it is healthy.
			ci.clientCode, ci.clientReason = websocket.StatusServiceRestart, "node going away: "+ce.Reason
			pc.p.recordHealth(pc.b, fmt.Errorf("node going away: %s", ce.Reason))
		case peerCode != -1:
			ci.clientCode, ci.clientReason = peerCode, ce.Reason
		case errors.Is(se.err, websocket.ErrMessageTooBig):
			ci.nodeCode, ci.nodeReason = websocket.StatusMessageTooBig, "message too big"
			ci.clientCode, ci.clientReason = websocket.StatusMessageTooBig, "node message exceeds the gateway's read limit"
		default: // node crashed, restarted or stopped answering pings
			ci.clientCode, ci.clientReason = websocket.StatusServiceRestart, "node connection lost"
			pc.p.recordHealth(pc.b, fmt.Errorf("connection lost: %v", se.err))
		}
	default:
		reason := se.err.Error()
		if errors.Is(se.err, errShutdown) {
			reason = reasonShutdown
		}
		ci.clientCode, ci.clientReason = websocket.StatusGoingAway, reason
		ci.nodeCode, ci.nodeReason = websocket.StatusGoingAway, reason
	}
	return ci
}

func (pc *proxyConn) isDraining() bool {
	pc.toClient.Lock()
	defer pc.toClient.Unlock()
	return pc.draining
}

// closeSides sends the chosen close frames (waiting for the close
// handshakes, bounded by the websocket package's own timeouts) and drops
// sides that get none. Both sides are closed concurrently.
func (pc *proxyConn) closeSides(ci closeInfo) {
	var wg sync.WaitGroup
	closeOne := func(c *websocket.Conn, code websocket.StatusCode, reason string) {
		defer wg.Done()
		if code == -1 {
			c.CloseNow()
			return
		}
		c.Close(code, truncateReason(reason))
	}
	wg.Add(2)
	go closeOne(pc.nc, ci.nodeCode, ci.nodeReason)
	closeOne(pc.cc, ci.clientCode, ci.clientReason)
	wg.Wait()
}

// truncateReason fits a close reason into a control frame (123 bytes).
func truncateReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}
