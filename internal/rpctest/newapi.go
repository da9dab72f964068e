package rpctest

import (
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"
)

// The new JSON-RPC API's chainHead_v1 group, as much as a client that
// follows heads needs: chainHead_v1_follow (initialized, newBlock,
// bestBlockChanged, finalized events), chainHead_v1_header,
// chainHead_v1_body and chainHead_v1_call (operations whose one event,
// operationBodyDone, operationCallDone or operationError, follows the
// reply), chainHead_v1_unpin and chainHead_v1_unfollow. The initialized event names
// the finalized block; blocks between it and the best one are not
// announced, and a finalized event lists only the newly finalized head.
//
// This file's init runs after methods.go's (files initialise in name
// order), which creates the method table.

// subFollow is a chainHead_v1_follow subscription. It has no entry in
// notifyMethod: activate and announce hand it to startFollow and
// followBlock.
const subFollow subKind = 100

// subOperation is a chainHead_v1 operation's pending event: a pseudo
// subscription that activate sends, after the call's reply, on its follow
// subscription (keys: the follow's id, the event's JSON).
const subOperation subKind = 101

const followEvent = "chainHead_v1_followEvent"

func init() {
	methods["chainHead_v1_follow"] = chainHeadFollow
	methods["chainHead_v1_unfollow"] = chainHeadUnfollow
	methods["chainHead_v1_header"] = chainHeadHeader
	methods["chainHead_v1_unpin"] = chainHeadUnpin
	methods["chainHead_v1_body"] = chainHeadBody
	methods["chainHead_v1_call"] = chainHeadCall
}

// operation starts a chainHead_v1 operation on the follow named by raw,
// whose one event (made by done from the operation id) follows the reply.
func (c *call) operation(raw json.RawMessage, hash string, done func(opID string) map[string]any) (any, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if _, err := c.follow(raw); err != nil {
		return nil, err
	}
	if c.n.chain.byHash(strings.ToLower(hash)) == nil {
		return nil, errInvalidParams("block %s is not pinned", hash)
	}
	var followID string
	json.Unmarshal(raw, &followID)
	opID := "op-" + rand.Text()[:8]
	ev, _ := json.Marshal(done(opID))
	c.conn.subs[opID] = &sub{kind: subOperation, keys: []string{followID, string(ev)}}
	*c.subs = append(*c.subs, opID)
	return map[string]any{"result": "started", "operationId": opID}, nil
}

// chainHeadBody: every block's body is empty.
func chainHeadBody(c *call) (any, error) {
	var sub json.RawMessage
	var hash string
	if err := c.args(&sub, &hash); err != nil {
		return nil, err
	}
	return c.operation(sub, hash, func(op string) map[string]any {
		return map[string]any{"event": "operationBodyDone", "operationId": op, "value": []string{}}
	})
}

// chainHeadCall runs a runtime call as state_call does.
func chainHeadCall(c *call) (any, error) {
	var sub json.RawMessage
	var hash, fn, data string
	if err := c.args(&sub, &hash, &fn, &data); err != nil {
		return nil, err
	}
	params, _ := json.Marshal([]string{fn, data})
	out, callErr := stateCall(&call{n: c.n, params: params})
	return c.operation(sub, hash, func(op string) map[string]any {
		if callErr != nil {
			return map[string]any{"event": "operationError", "operationId": op, "error": callErr.Error()}
		}
		return map[string]any{"event": "operationCallDone", "operationId": op, "output": out}
	})
}

// endOperation sends an operation's event on its follow subscription;
// n.mu is held.
func (c *wsConn) endOperation(id string, s *sub) {
	delete(c.subs, id)
	if f := c.subs[s.keys[0]]; f != nil && f.kind == subFollow {
		c.send(notification(followEvent, s.keys[0], json.RawMessage(s.keys[1])))
	}
}

// chainHeadFollow opens a follow subscription; [withRuntime] is recorded
// in the sub's keys.
func chainHeadFollow(c *call) (any, error) {
	if c.conn == nil {
		return nil, &Error{Code: CodeInternalError, Message: "Internal error", Data: "subscriptions need a WebSocket connection"}
	}
	var withRuntime bool
	if err := c.args(&withRuntime); err != nil {
		return nil, err
	}
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	id := rand.Text()[:16]
	s := &sub{kind: subFollow}
	if withRuntime {
		s.keys = []string{"withRuntime"}
	}
	c.conn.subs[id] = s
	*c.subs = append(*c.subs, id)
	return id, nil
}

// follow returns the caller's follow subscription named by the first
// param, or an error as the node gives for an unknown one; n.mu is held.
func (c *call) follow(raw json.RawMessage) (*sub, error) {
	var id string
	if json.Unmarshal(raw, &id) != nil || c.conn == nil {
		return nil, errInvalidParams("invalid followSubscription")
	}
	s := c.conn.subs[id]
	if s == nil || s.kind != subFollow {
		return nil, &Error{Code: CodeInvalidParams, Message: "Invalid subscription ID"}
	}
	return s, nil
}

func chainHeadUnfollow(c *call) (any, error) {
	var id string
	if err := c.args(&id); err != nil {
		return nil, err
	}
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if c.conn != nil {
		if s := c.conn.subs[id]; s != nil && s.kind == subFollow {
			delete(c.conn.subs, id)
		}
	}
	return nil, nil
}

// chainHeadHeader returns the SCALE-encoded header of a block, or null for
// a block the node does not know.
func chainHeadHeader(c *call) (any, error) {
	var sub json.RawMessage
	var hash string
	if err := c.args(&sub, &hash); err != nil {
		return nil, err
	}
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if _, err := c.follow(sub); err != nil {
		return nil, err
	}
	b := c.n.chain.byHash(strings.ToLower(hash))
	if b == nil {
		return nil, nil
	}
	return hexString(encodeHeader(b.header)), nil
}

func chainHeadUnpin(c *call) (any, error) {
	var sub, hashes json.RawMessage
	if err := c.args(&sub, &hashes); err != nil {
		return nil, err
	}
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if _, err := c.follow(sub); err != nil {
		return nil, err
	}
	return nil, nil
}

// startFollow sends a new follow its initialized event; n.mu is held.
func (c *wsConn) startFollow(id string, s *sub) {
	fin := c.n.chain.finalized
	ev := map[string]any{"event": "initialized", "finalizedBlockHashes": []string{fin.hash}}
	if len(s.keys) > 0 {
		ev["finalizedBlockRuntime"] = map[string]any{"type": "valid", "spec": followSpec(c.n.static.runtime)}
	}
	c.send(notification(followEvent, id, ev))
}

// followBlock sends a follow the events of a new best block and of a
// newly finalized one (either may be nil); n.mu is held.
func (c *wsConn) followBlock(id string, best, finalized *block) {
	if best != nil {
		c.send(notification(followEvent, id, map[string]any{
			"event": "newBlock", "blockHash": best.hash, "parentBlockHash": best.header.ParentHash, "newRuntime": nil,
		}))
		c.send(notification(followEvent, id, map[string]any{"event": "bestBlockChanged", "bestBlockHash": best.hash}))
	}
	if finalized != nil {
		c.send(notification(followEvent, id, map[string]any{
			"event": "finalized", "finalizedBlockHashes": []string{finalized.hash}, "prunedBlockHashes": []string{},
		}))
	}
}

// followSpec converts a legacy runtime version into the new API's
// RuntimeSpec: apis as an object of name to version.
func followSpec(runtime json.RawMessage) map[string]any {
	var rv struct {
		SpecName           string  `json:"specName"`
		ImplName           string  `json:"implName"`
		SpecVersion        uint32  `json:"specVersion"`
		ImplVersion        uint32  `json:"implVersion"`
		TransactionVersion uint32  `json:"transactionVersion"`
		APIs               [][]any `json:"apis"`
	}
	json.Unmarshal(runtime, &rv)
	apis := map[string]any{}
	for _, a := range rv.APIs {
		if len(a) == 2 {
			if name, ok := a[0].(string); ok {
				apis[name] = a[1]
			}
		}
	}
	return map[string]any{
		"specName": rv.SpecName, "implName": rv.ImplName, "specVersion": rv.SpecVersion,
		"implVersion": rv.ImplVersion, "transactionVersion": rv.TransactionVersion, "apis": apis,
	}
}

// encodeHeader is a header's SCALE encoding (parent, compact number, state
// root, extrinsics root, no digest items), the bytes headerHash hashes.
func encodeHeader(h Header) []byte {
	n, _ := strconv.ParseUint(h.Number[2:], 16, 64)
	var enc []byte
	enc = append(enc, mustHex(h.ParentHash)...)
	enc = append(enc, compact(n)...)
	enc = append(enc, mustHex(h.StateRoot)...)
	enc = append(enc, mustHex(h.ExtrinsicsRoot)...)
	return append(enc, 0)
}
