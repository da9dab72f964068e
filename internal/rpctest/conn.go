package rpctest

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/coder/websocket"
)

const websocketGoingAway = websocket.StatusGoingAway

// outQueue is how many messages may wait for a slow client before the node
// drops the connection.
const outQueue = 4096

// wsConn is one WebSocket client. Its reader answers requests in order; its
// writer sends replies and notifications from out.
type wsConn struct {
	n      *Node
	ws     *websocket.Conn
	out    chan []byte
	cancel context.CancelFunc
	subs   map[string]*sub // guarded by n.mu
}

// send queues msg; n.mu is held. A client that falls outQueue messages
// behind is dropped.
func (c *wsConn) send(msg []byte) {
	select {
	case c.out <- msg:
	default:
		c.n.logger.Warn("rpctest: dropping slow client", "reason", "send queue full")
		c.cancel()
	}
}

func (n *Node) serveWS(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	n.mu.Lock()
	n.headers = append(n.headers, h)
	n.mu.Unlock()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       n.opts.Subprotocols,
		InsecureSkipVerify: true, // any Origin, like --rpc-cors all; tests read Headers
	})
	if err != nil {
		n.logger.Debug("rpctest: accept", "client", r.RemoteAddr, "reason", err)
		return
	}
	limit := n.opts.MaxMessageSize
	if limit < 0 {
		limit = -1
	}
	ws.SetReadLimit(limit)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(n.killCtx, cancel)
	defer stop()
	c := &wsConn{n: n, ws: ws, out: make(chan []byte, outQueue), cancel: cancel, subs: map[string]*sub{}}

	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		if n.killCtx.Err() != nil {
			ws.CloseNow()
		} else {
			ws.Close(websocket.StatusGoingAway, "node shutting down")
		}
		return
	}
	n.conns[c] = struct{}{}
	n.mu.Unlock()
	n.logger.Debug("rpctest: ws open", "client", r.RemoteAddr)
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
		n.logger.Debug("rpctest: ws closed", "client", r.RemoteAddr)
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop(ctx)
	}()
	c.readLoop(ctx)
	cancel()
	<-done
	ws.CloseNow()
}

func (c *wsConn) readLoop(ctx context.Context) {
	for {
		_, msg, err := c.ws.Read(ctx)
		if err != nil {
			c.n.logger.Debug("rpctest: ws read", "reason", err, "code", websocket.CloseStatus(err))
			return
		}
		if c.n.stalled() {
			c.n.recordMethods(msg)
			continue
		}
		var ids []string
		resp := c.n.handleMessage(c, msg, &ids)
		c.n.mu.Lock()
		if c.n.stall == nil {
			c.activate(resp, ids)
		}
		c.n.mu.Unlock()
	}
}

func (c *wsConn) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-c.out:
			if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
				c.n.logger.Debug("rpctest: ws write", "reason", err, "bytes", len(msg))
				c.cancel()
				return
			}
		}
	}
}

func (n *Node) stalled() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stall != nil
}

// recordMethods records the methods of a request or batch that the node
// drops while stalled.
func (n *Node) recordMethods(msg []byte) {
	var one struct{ Method string }
	if json.Unmarshal(msg, &one) == nil {
		n.recordSeen(one.Method)
		return
	}
	var batch []struct{ Method string }
	if json.Unmarshal(msg, &batch) == nil {
		for _, r := range batch {
			n.recordSeen(r.Method)
		}
	}
}
