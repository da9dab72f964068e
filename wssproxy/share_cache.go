package wssproxy

import (
	"bytes"
	"container/list"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// shareCache holds answers that cannot change, least recently used first
// out, within a byte bound. Keys start with the chain's genesis hash, so
// nodes of another chain never share an entry. Guarded by shareHub.mu.
type shareCache struct {
	limit   int64
	size    int64
	lru     *list.List // of *cacheEntry, most recent first
	entries map[string]*list.Element
	flights map[string][]cacheWaiter // calls in flight, by key
	metrics hooks

	hits, misses int64
}

type cacheEntry struct {
	key    string
	result []byte
}

type cacheWaiter struct {
	id  []byte
	col *collector
}

func newShareCache(limit int64, m hooks) *shareCache {
	return &shareCache{limit: limit, lru: list.New(), entries: map[string]*list.Element{},
		flights: map[string][]cacheWaiter{}, metrics: m}
}

func (sc *shareCache) get(key string) ([]byte, bool) {
	e := sc.entries[key]
	if e == nil {
		return nil, false
	}
	sc.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).result, true
}

func (sc *shareCache) put(key string, result []byte) {
	size := int64(len(key) + len(result) + 64)
	if size > sc.limit/4 {
		return // one answer may not take most of the cache
	}
	if e := sc.entries[key]; e != nil {
		return
	}
	sc.entries[key] = sc.lru.PushFront(&cacheEntry{key, result})
	sc.size += size
	for sc.size > sc.limit {
		e := sc.lru.Back()
		ce := e.Value.(*cacheEntry)
		sc.lru.Remove(e)
		delete(sc.entries, ce.key)
		sc.size -= int64(len(ce.key) + len(ce.result) + 64)
	}
}

// hashParam is the position of the block hash parameter of calls whose
// answer at a given block never changes.
var hashParam = map[string]int{
	"chain_getBlock":          0,
	"chain_getHeader":         0,
	"state_getMetadata":       0,
	"state_getRuntimeVersion": 0,
	"chain_getRuntimeVersion": 0,
	"state_call":              2,
	"state_getStorage":        1,
	"state_getStorageAt":      1,
	"state_getStorageHash":    1,
	"state_getStorageSize":    1,
	"state_getReadProof":      1,
	"state_getKeysPaged":      3,
	"state_getChildStorage":   2,
}

// cacheKeyLocked returns the cache key of a call whose answer cannot
// change, or "". h.mu is held.
func (h *shareHub) cacheKeyLocked(method string, params []byte) string {
	if h.genesis == "" {
		return ""
	}
	var compact bytes.Buffer
	if !jsonrpc.IsEmpty(params) && json.Compact(&compact, params) != nil {
		return ""
	}
	key := func(extra string) string { return h.genesis + " " + method + " " + compact.String() + extra }
	switch method {
	case "system_chain", "system_properties", "system_chainType":
		if jsonrpc.IsEmpty(params) {
			return key("")
		}
		return ""
	case "chain_getBlockHash", "chain_getHead":
		raw, ok := jsonrpc.Index(params, 0)
		if !ok {
			return ""
		}
		n, ok := blockNumber(raw)
		if ok && (n == 0 || n <= h.finalizedLocked()) {
			return h.genesis + " " + method + " " + strconv.FormatUint(n, 10)
		}
		return ""
	}
	if i, ok := hashParam[method]; ok {
		if raw, ok := jsonrpc.Index(params, i); ok && isBlockHash(raw) {
			return key("")
		}
	}
	// Metadata at the best block is the same for every block of one
	// runtime: keyed by the runtime version the node last reported.
	metadata := method == "state_getMetadata" && jsonrpc.IsEmpty(params)
	if method == "state_call" {
		raw, _ := jsonrpc.Index(params, 0)
		name, _ := jsonrpc.Unquote(raw)
		_, hasAt := jsonrpc.Index(params, 2)
		metadata = strings.HasPrefix(name, "Metadata_metadata") && !hasAt
	}
	if metadata && h.runtime != "" {
		return key(" @" + h.runtime)
	}
	return ""
}

// cachedLocked answers a cacheable call from the cache, or joins the same
// call in flight, or sends it and caches its answer. It returns false for
// a call that is not cacheable. h.mu is held.
func (h *shareHub) cachedLocked(c *shareClient, method string, params, id []byte, col *collector) bool {
	key := h.cacheKeyLocked(method, params)
	if key == "" {
		return false
	}
	sc := h.cache
	if result, ok := sc.get(key); ok {
		sc.hits++
		sc.metrics.Cache(method, true)
		col.doneLocked(resultReply(id, result), nil)
		return true
	}
	sc.misses++
	sc.metrics.Cache(method, false)
	if w, ok := sc.flights[key]; ok {
		sc.flights[key] = append(w, cacheWaiter{id, col})
		return true
	}
	sc.flights[key] = []cacheWaiter{{id, col}}
	genesis := h.genesis
	j := &job{key: c.key, owner: c, method: method, params: params, readOnly: true}
	j.done = func(a answer) {
		waiters := sc.flights[key]
		delete(sc.flights, key)
		if !a.lost && !a.call.HasError && a.call.Result != nil && string(a.call.Result) != "null" && a.nc.genesis == genesis {
			sc.put(key, bytes.Clone(a.call.Result))
		}
		for _, w := range waiters {
			w.col.doneLocked(replyFor(a, w.id), nil)
		}
	}
	if err := h.submitLocked(j); err != nil {
		delete(sc.flights, key)
		col.doneLocked(jsonrpc.AppendError(nil, id, jsonrpc.CodeLimitExceeded, err.Error(), ""), nil)
	}
	return true
}

// resultReply is a successful reply with id.
func resultReply(id, result []byte) []byte {
	b := make([]byte, 0, 32+len(id)+len(result))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

// finalizedLocked is the number of the last finalized head a shared
// subscription or the health checks' subscriptions reported, or 0.
func (h *shareHub) finalizedLocked() uint64 {
	var top uint64
	if ss := h.shared["chain_subscribeFinalizedHeads"]; ss != nil && ss.live {
		top, _ = headNumber(ss.latest)
	}
	for o := range h.observers { // a block final on one node is final
		if n, ok := headNumber(o.latest[1]); ok {
			top = max(top, n)
		}
	}
	return top
}

// blockNumber reads a block number parameter: a JSON number or a hex or
// decimal string.
func blockNumber(raw []byte) (uint64, bool) {
	raw = jsonrpc.TrimSpace(raw)
	if s, ok := jsonrpc.Unquote(raw); ok {
		n, err := strconv.ParseUint(s, 0, 64)
		return n, err == nil
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	return n, err == nil
}

// isBlockHash reports whether raw is a JSON string of a 32-byte hex hash.
func isBlockHash(raw []byte) bool {
	s, ok := jsonrpc.Unquote(raw)
	if !ok || len(s) != 66 || !strings.HasPrefix(s, "0x") {
		return false
	}
	for _, r := range s[2:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// learnLocked notes what the node tells about the chain from a reply the
// gateway routes: the runtime version, which keys cached metadata. h.mu
// is held.
func (h *shareHub) learnLocked(method string, params []byte, a answer) {
	if a.lost || a.call.HasError || a.call.Result == nil {
		return
	}
	if (method == "state_getRuntimeVersion" || method == "chain_getRuntimeVersion") && jsonrpc.IsEmpty(params) {
		h.runtime = runtimeKey(a.call.Result)
	}
}

// runtimeKey is the part of a runtime version that names the runtime.
func runtimeKey(v []byte) string {
	var rv struct {
		SpecName           string `json:"specName"`
		SpecVersion        uint64 `json:"specVersion"`
		TransactionVersion uint64 `json:"transactionVersion"`
	}
	if json.Unmarshal(v, &rv) != nil || rv.SpecName == "" {
		return ""
	}
	return rv.SpecName + "/" + strconv.FormatUint(rv.SpecVersion, 10) + "/" + strconv.FormatUint(rv.TransactionVersion, 10)
}
