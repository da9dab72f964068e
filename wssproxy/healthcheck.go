package wssproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// Whether a node serves unsafe methods to the gateway, as
// [NodeStatus].UnsafeMethods reports it.
const (
	UnsafeUnknown = "unknown" // not probed yet, or the probe failed
	UnsafeServed  = "served"  // the node answered the probe: it runs with --rpc-methods unsafe (or auto, and trusts the gateway as local)
	UnsafeRefused = "refused" // the node refused the probe as --rpc-methods safe does
)

// unsafeWarning is logged when a node serves unsafe methods to the gateway.
const unsafeWarning = "node serves unsafe methods to the gateway; run it with --rpc-methods safe"

// The health query's ids. system_peers probes whether the node serves
// unsafe methods to the gateway: polkadot-sdk guards it with
// check_if_safe (substrate/client/rpc/src/system/mod.rs, system_peers),
// so a node run with --rpc-methods safe refuses it with UnsafeRpcError,
// code -32601 "RPC call is unsafe to be called externally"
// (substrate/client/rpc-api/src/policy.rs); yet it only reads the list of
// connected peers. Unsafe methods that change the node (author_rotateKeys,
// system_addReservedPeer, ...) must never be used as probes.
const (
	idHealth    = 1
	idProbe     = 2
	idHeader    = 3
	idFinalized = 4
)

// healthQuery asks a node, in one batch, for its health and whether it
// serves unsafe methods; poll adds its best header and finalized hash.
func healthQuery(poll bool) []byte {
	q := `[{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]},` +
		`{"jsonrpc":"2.0","id":2,"method":"system_peers","params":[]}`
	if poll {
		q += `,{"jsonrpc":"2.0","id":3,"method":"chain_getHeader","params":[]},` +
			`{"jsonrpc":"2.0","id":4,"method":"chain_getFinalizedHead","params":[]}`
	}
	return []byte(q + "]")
}

// healthReply is one reply of a batch the gateway sent.
type healthReply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends a JSON-RPC body to node b and decodes the batch reply.
func (p *Proxy) post(ctx context.Context, b *backend, body []byte) ([]healthReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.httpURL.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.opts.UpstreamHeader {
		req.Header[k] = v
	}
	// The query only reads, so let net/http retry it on a kept-alive
	// connection the node closed (after a restart, say) instead of
	// failing the check; a nil value is not sent.
	req.Header["Idempotency-Key"] = nil
	resp, err := p.dial.Do(req)
	if err != nil {
		return nil, unhealthy(StateDown, "unreachable: %s", dialCause(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, unhealthy(StateDown, "health query failed: %s", resp.Status)
	}
	var replies []healthReply
	if err := json.Unmarshal(data, &replies); err != nil {
		return nil, unhealthy(StateDown, "health query: reply is not a JSON-RPC batch")
	}
	return replies, nil
}

// check asks one node whether it can serve: reachable, not syncing, with
// peers if it should have them. It records the node's peers, whether it
// serves unsafe methods and, while its head subscriptions are down, its
// best and finalized blocks.
func (p *Proxy) check(ctx context.Context, b *backend) error {
	poll, token := b.health.pollStart(p.opts.now(), p.stallTimeout())
	replies, err := p.post(ctx, b, healthQuery(poll))
	if err != nil {
		return err
	}
	var health struct {
		Peers           int  `json:"peers"`
		IsSyncing       bool `json:"isSyncing"`
		ShouldHavePeers bool `json:"shouldHavePeers"`
	}
	var header struct {
		Number string `json:"number"`
	}
	var finalized string
	unsafe := UnsafeUnknown
	got := map[int]bool{}
	for _, r := range replies {
		got[r.ID] = r.Error == nil
		switch {
		case r.ID == idProbe:
			unsafe = probeResult(r)
		case r.Error != nil:
			return unhealthy(StateDown, "health query: reply %d: error %d %s", r.ID, r.Error.Code, r.Error.Message)
		case r.ID == idHealth:
			err = json.Unmarshal(r.Result, &health)
		case r.ID == idHeader:
			err = json.Unmarshal(r.Result, &header)
		case r.ID == idFinalized:
			err = json.Unmarshal(r.Result, &finalized)
		}
		if err != nil {
			return unhealthy(StateDown, "health query: reply %d: %v", r.ID, err)
		}
	}
	p.recordUnsafe(b, unsafe)
	if !got[idHealth] || poll && (!got[idHeader] || !got[idFinalized]) {
		return unhealthy(StateDown, "health query: replies missing")
	}
	b.health.mu.Lock()
	b.health.peers, b.health.syncing = health.Peers, health.IsSyncing
	b.health.mu.Unlock()
	if poll {
		if err := p.pollHeads(ctx, b, token, header.Number, finalized); err != nil {
			return err
		}
	}
	switch {
	case health.IsSyncing:
		return unhealthy(StateSyncing, "node is syncing")
	case health.ShouldHavePeers && health.Peers == 0:
		return unhealthy(StateNoPeers, "node has no peers")
	}
	return nil
}

// pollHeads asks the node for the number of its finalized block, whose
// hash it gave, and records it with the best block number.
func (p *Proxy) pollHeads(ctx context.Context, b *backend, token uint64, bestNumber, finalizedHash string) error {
	best, err := strconv.ParseUint(bestNumber, 0, 64)
	if err != nil {
		return unhealthy(StateDown, "health query: best block number %q", bestNumber)
	}
	q, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": idHeader, "method": "chain_getHeader", "params": []string{finalizedHash}})
	replies, err := p.post(ctx, b, append(append([]byte{'['}, q...), ']'))
	if err != nil {
		return err
	}
	var header struct {
		Number string `json:"number"`
	}
	if len(replies) != 1 || replies[0].Error != nil || json.Unmarshal(replies[0].Result, &header) != nil {
		return unhealthy(StateDown, "health query: no header for the finalized block %s", finalizedHash)
	}
	fin, err := strconv.ParseUint(header.Number, 0, 64)
	if err != nil {
		return unhealthy(StateDown, "health query: finalized block number %q", header.Number)
	}
	if d, ok := b.health.observePolled(token, best, fin, p.opts.now()); ok {
		p.blockTimes.add(d)
	}
	return nil
}

// probeResult reads the reply to the system_peers probe: an answer means
// the node serves unsafe methods to the gateway; -32601 means it refused
// (UnsafeRpcError, or a node without the method: either way not served);
// another error tells nothing.
func probeResult(r healthReply) string {
	switch {
	case r.Error == nil:
		return UnsafeServed
	case r.Error.Code == -32601:
		return UnsafeRefused
	}
	return UnsafeUnknown
}

// recordUnsafe records the outcome of the node-mode probe, and warns when
// a node serves unsafe methods (once per change).
func (p *Proxy) recordUnsafe(b *backend, mode string) {
	if mode == UnsafeUnknown {
		return // keep what an earlier probe learned
	}
	h := &b.health
	h.mu.Lock()
	changed := h.unsafe != mode
	h.unsafe = mode
	h.mu.Unlock()
	switch {
	case !changed:
	case mode == UnsafeServed:
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "wssproxy: "+unsafeWarning, slog.String("upstream", b.host))
	default:
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "wssproxy: node refuses unsafe methods", slog.String("upstream", b.host))
	}
}
