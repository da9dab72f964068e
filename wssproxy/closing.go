package wssproxy

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wssgate/wssgate/internal/wsframe"
)

// closeInfo records how a connection ended, for the log line.
type closeInfo struct {
	by           side
	clientCode   wsframe.StatusCode // -1: no close frame
	clientReason string
	nodeCode     wsframe.StatusCode
	nodeReason   string
	err          error
}

// finish ends the connection once, choosing codes from the first error:
// the side that failed is dropped, and the other gets a close frame with a
// code that says what happened.
func (pc *proxyConn) finish(err error) {
	pc.endOnce.Do(func() {
		pc.ending.Store(true)
		if pc.cancel != nil {
			pc.cancel()
		}
		pc.end = pc.classify(err)
		sent := wsframe.StatusCode(pc.closeSent.Load())
		if sent != 0 { // drained: the client has its close frame already
			pc.end.clientCode = -1
		}
		pc.closeSides(pc.end)
		if sent != 0 {
			pc.end.by, pc.end.clientCode, pc.end.clientReason = sideGateway, sent, reasonShutdown
		}
		pc.wakeParked()
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
	var ce wsframe.CloseError
	peerClosed := errors.As(se.err, &ce)
	var pe *protocolError
	var pcl *policyClose
	switch se.side {
	case sideClient:
		switch {
		case peerClosed: // the client closed: pass its code on
			ci.nodeCode, ci.nodeReason = ce.Code, ce.Reason
		case errors.Is(se.err, errMessageTooBig):
			ci.clientCode, ci.clientReason = wsframe.StatusMessageTooBig, "message too big"
			ci.nodeCode, ci.nodeReason = wsframe.StatusGoingAway, "client closed: message too big"
		case errors.As(se.err, &pcl):
			ci.clientCode, ci.clientReason = wsframe.StatusCode(pcl.code), pcl.reason
			ci.nodeCode, ci.nodeReason = wsframe.StatusGoingAway, "client closed by gateway"
		case errors.As(se.err, &pe):
			ci.clientCode, ci.clientReason = wsframe.StatusProtocolError, string(pe.ProtocolError)
			ci.nodeCode, ci.nodeReason = wsframe.StatusGoingAway, "client went away"
		default: // vanished, or stopped reading
			ci.nodeCode, ci.nodeReason = wsframe.StatusGoingAway, "client went away"
		}
	case sideNode:
		switch {
		case peerClosed && ce.Code == wsframe.StatusGoingAway && !pc.draining.Load():
			// The node is shutting down (a restart, an upgrade): the
			// gateway is not, so tell the client to come back (1012), to
			// another node, and take this one out until it is healthy.
			ci.clientCode, ci.clientReason = wsframe.StatusServiceRestart, "node going away: "+ce.Reason
			pc.p.recordHealth(pc.b, fmt.Errorf("node going away: %s", ce.Reason))
		case peerClosed:
			ci.clientCode, ci.clientReason = ce.Code, ce.Reason
		case errors.Is(se.err, errMessageTooBig):
			ci.nodeCode, ci.nodeReason = wsframe.StatusMessageTooBig, "message too big"
			ci.clientCode, ci.clientReason = wsframe.StatusMessageTooBig, "node message exceeds the gateway's read limit"
		case errors.As(se.err, &pe):
			ci.nodeCode, ci.nodeReason = wsframe.StatusProtocolError, string(pe.ProtocolError)
			ci.clientCode, ci.clientReason = wsframe.StatusServiceRestart, "node broke the WebSocket protocol"
			pc.p.recordHealth(pc.b, fmt.Errorf("protocol error: %s", string(pe.ProtocolError)))
		default: // node crashed, restarted or stopped answering pings
			ci.clientCode, ci.clientReason = wsframe.StatusServiceRestart, "node connection lost"
			pc.p.recordHealth(pc.b, fmt.Errorf("connection lost: %v", se.err))
		}
	default:
		reason := se.err.Error()
		if errors.Is(se.err, errShutdown) {
			reason = reasonShutdown
		}
		ci.clientCode, ci.clientReason = wsframe.StatusGoingAway, reason
		ci.nodeCode, ci.nodeReason = wsframe.StatusGoingAway, reason
	}
	return ci
}

// closeSides sends the chosen close frames and drops the sides that get
// none. A side sent a close frame has closeTimeout to answer it, as the
// websocket package's own close handshake allows: its copier reads on
// until the answer (or the deadline), and run then closes the socket.
func (pc *proxyConn) closeSides(ci closeInfo) {
	var wg sync.WaitGroup
	closeOne := func(s *socket, code wsframe.StatusCode, reason string) {
		defer wg.Done()
		if code == -1 {
			s.conn.Close() // first: a write blocked on it holds the gather
			s.out.drop()
			return
		}
		deadline := time.Now().Add(closeTimeout)
		s.conn.SetWriteDeadline(deadline) // a peer that does not read cannot hold us
		if err := s.out.close(wsframe.AppendClose(nil, code, reason, s.side == sideNode, newMaskKey())); err != nil {
			s.conn.Close()
			return
		}
		pc.parkMu.Lock() // not to cross a copier's own deadline (park.go)
		s.conn.SetReadDeadline(deadline)
		pc.closeDeadline[s.side] = true
		pc.parkMu.Unlock()
	}
	wg.Add(2)
	go closeOne(pc.node, ci.nodeCode, ci.nodeReason)
	closeOne(pc.client, ci.clientCode, ci.clientReason)
	wg.Wait()
}
