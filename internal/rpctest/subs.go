package rpctest

import (
	"crypto/rand"
	"strings"
)

type subKind int

const (
	subNewHeads subKind = iota
	subFinalizedHeads
	subAllHeads
	subRuntimeVersion
	subStorage
	subExtrinsic // author_submitAndWatchExtrinsic: the node ends it at a final status
)

// notifyMethod is the notification method name of each kind.
var notifyMethod = [...]string{
	subNewHeads:       "chain_newHead",
	subFinalizedHeads: "chain_finalizedHead",
	subAllHeads:       "chain_allHead",
	subRuntimeVersion: "state_runtimeVersion",
	subStorage:        "state_storage",
	subExtrinsic:      "author_extrinsicUpdate",
}

// subscriptionMethods maps each subscribe method, aliases included, to its
// kind and unsubscribe methods.
var subscriptionMethods = map[string]struct {
	kind        subKind
	unsubscribe []string
}{
	"chain_subscribeNewHeads":       {subNewHeads, []string{"chain_unsubscribeNewHeads"}},
	"chain_subscribeNewHead":        {subNewHeads, []string{"chain_unsubscribeNewHead"}},
	"subscribe_newHead":             {subNewHeads, []string{"unsubscribe_newHead"}},
	"chain_subscribeFinalizedHeads": {subFinalizedHeads, []string{"chain_unsubscribeFinalizedHeads"}},
	"chain_subscribeFinalisedHeads": {subFinalizedHeads, []string{"chain_unsubscribeFinalisedHeads"}},
	"chain_subscribeAllHeads":       {subAllHeads, []string{"chain_unsubscribeAllHeads"}},
	"state_subscribeRuntimeVersion": {subRuntimeVersion, []string{"state_unsubscribeRuntimeVersion"}},
	"chain_subscribeRuntimeVersion": {subRuntimeVersion, []string{"chain_unsubscribeRuntimeVersion"}},
	"state_subscribeStorage":        {subStorage, []string{"state_unsubscribeStorage"}},
	// The extrinsic is not executed: it is "included" in the best block and
	// finalized at once, and the node then ends the subscription itself,
	// as Substrate does at a final status (a client need not unwatch).
	"author_submitAndWatchExtrinsic": {subExtrinsic, []string{"author_unwatchExtrinsic"}},
}

// sub is one subscription of a connection. It receives notifications once
// active, that is after its id was sent to the client.
type sub struct {
	kind   subKind
	active bool
	keys   []string // state_subscribeStorage
}

func subscribe(kind subKind) method {
	return func(c *call) (any, error) {
		if c.conn == nil {
			return nil, &Error{Code: CodeInternalError, Message: "Internal error", Data: "subscriptions need a WebSocket connection"}
		}
		var keys []string
		switch kind {
		case subStorage:
			if err := c.args(&keys); err != nil {
				return nil, err
			}
		case subExtrinsic:
			var xt string
			if err := c.args(&xt); err != nil || !strings.HasPrefix(xt, "0x") {
				return nil, errInvalidParams("expected a hex-encoded extrinsic")
			}
		}
		c.n.mu.Lock()
		defer c.n.mu.Unlock()
		if len(c.conn.subs) >= maxSubscriptionsPerConn {
			return nil, &Error{
				Code:    CodeTooManySubs,
				Message: "Too many subscriptions on the connection",
				Data:    "Exceeded max limit of 1024",
			}
		}
		id := rand.Text()[:16]
		c.conn.subs[id] = &sub{kind: kind, keys: keys}
		*c.subs = append(*c.subs, id)
		return id, nil
	}
}

func unsubscribe(kind subKind) method {
	return func(c *call) (any, error) {
		var id string
		if err := c.args(&id); err != nil {
			return nil, err
		}
		if c.conn == nil {
			return false, nil
		}
		c.n.mu.Lock()
		defer c.n.mu.Unlock()
		if s, ok := c.conn.subs[id]; ok && s.kind == kind {
			delete(c.conn.subs, id)
			return true, nil
		}
		return false, nil
	}
}

// activate sends resp, then makes the subscriptions live and sends each
// its first notification, as Substrate does. n.mu is held, so a new block
// cannot slip in between.
func (c *wsConn) activate(resp []byte, ids []string) {
	if resp != nil {
		c.send(resp)
	}
	for _, id := range ids {
		s := c.subs[id]
		if s == nil {
			continue
		}
		s.active = true
		switch s.kind {
		case subExtrinsic:
			c.watchExtrinsic(id)
			continue
		case subFollow:
			c.startFollow(id, s)
			continue
		case subOperation:
			c.endOperation(id, s)
			continue
		}
		c.send(c.n.initial(id, s))
	}
}

// watchExtrinsic sends a watched extrinsic's statuses up to finalized and
// ends its subscription, as Substrate's pool does: nothing follows a final
// status. c.n.mu is held.
func (c *wsConn) watchExtrinsic(id string) {
	best := c.n.chain.best()
	for _, status := range []any{"ready", map[string]any{"inBlock": best.hash}, map[string]any{"finalized": best.hash}} {
		c.send(notification(notifyMethod[subExtrinsic], id, status))
	}
	delete(c.subs, id)
}

// initial is the first notification of a new subscription; n.mu is held.
func (n *Node) initial(id string, s *sub) []byte {
	best := n.chain.best()
	switch s.kind {
	case subRuntimeVersion:
		return notification(notifyMethod[s.kind], id, n.static.runtime)
	case subStorage:
		changes := make([][2]any, len(s.keys))
		for i, k := range s.keys {
			changes[i] = [2]any{k, nil}
		}
		return notification(notifyMethod[s.kind], id, map[string]any{"block": best.hash, "changes": changes})
	case subFinalizedHeads:
		return notification(notifyMethod[s.kind], id, n.chain.finalized.header)
	}
	return notification(notifyMethod[s.kind], id, best.header)
}

// announce pushes a new best block and a newly finalized one (either may
// be nil) to the head subscribers; n.mu is held.
func (n *Node) announce(best, finalized *block) {
	if n.stall != nil {
		return
	}
	for c := range n.conns {
		for id, s := range c.subs {
			if s.active && s.kind == subFollow {
				c.followBlock(id, best, finalized)
				continue
			}
			b := best
			if s.kind == subFinalizedHeads {
				b = finalized
			}
			if !s.active || s.kind > subAllHeads || b == nil {
				continue
			}
			c.send(notification(notifyMethod[s.kind], id, b.header))
		}
	}
}
