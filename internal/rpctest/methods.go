package rpctest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

type method func(*call) (any, error)

// methods is the node's RPC table; rpc_methods lists its keys.
var methods map[string]method

func init() {
	methods = map[string]method{
		"rpc_methods":      rpcMethods,
		"test_echo":        testEcho,
		"test_big":         testBig,
		"system_chain":     constant("Development"),
		"system_name":      constant("wssgate rpctest"),
		"system_version":   constant("0.1.0"),
		"system_chainType": constant("Development"),
		"system_properties": constant(map[string]any{
			"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "UNIT",
		}),
		"system_health":        func(c *call) (any, error) { return c.n.Health(), nil },
		"system_localPeerId":   constant("12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"),
		"system_nodeRoles":     constant([]string{"Full"}),
		"system_syncState":     systemSyncState,
		"system_reservedPeers": constant([]string{}),

		"chain_getBlockHash":       chainGetBlockHash,
		"chain_getHead":            chainGetBlockHash,
		"chain_getHeader":          chainGetHeader,
		"chain_getBlock":           chainGetBlock,
		"chain_getFinalizedHead":   chainGetFinalizedHead,
		"chain_getFinalisedHead":   chainGetFinalizedHead,
		"chain_getRuntimeVersion":  stateGetRuntimeVersion,
		"state_getRuntimeVersion":  stateGetRuntimeVersion,
		"state_getMetadata":        stateGetMetadata,
		"state_call":               stateCall,
		"state_getStorage":         constant(nil),
		"state_getStorageAt":       constant(nil),
		"state_getStorageHash":     constant(nil),
		"state_getStorageSize":     constant(nil),
		"state_getKeysPaged":       constant([]string{}),
		"author_pendingExtrinsics": constant([]string{}),
	}
	for name, s := range subscriptionMethods {
		methods[name] = subscribe(s.kind)
		for _, unsub := range s.unsubscribe {
			methods[unsub] = unsubscribe(s.kind)
		}
	}
	for name, res := range unsafeMethods {
		methods[name] = constant(res)
	}
}

// unsafeMethods are the methods a Substrate node serves only with
// --rpc-methods unsafe (or on localhost with auto). The node answers each
// one successfully, so a test can see in [Node.Seen] that a gateway let one
// through; with Options.SafeRPCMethods it refuses them as Substrate does
// (see errUnsafe).
var unsafeMethods = map[string]any{
	"author_insertKey":             nil,
	"author_rotateKeys":            "0x" + strings.Repeat("ab", 128),
	"author_hasKey":                false,
	"author_hasSessionKeys":        false,
	"author_removeExtrinsic":       []string{},
	"system_peers":                 []any{},
	"system_unstable_networkState": map[string]any{},
	"system_addReservedPeer":       nil,
	"system_removeReservedPeer":    nil,
	"system_addLogFilter":          nil,
	"system_resetLogFilter":        nil,
	"offchain_localStorageGet":     nil,
	"offchain_localStorageSet":     nil,
	"offchain_localStorageClear":   nil,
	"state_getPairs":               []any{},
	"state_queryStorage":           []any{},
	"state_traceBlock":             map[string]any{},
	"dev_getBlockStats":            nil,
	"babe_epochAuthorship":         map[string]any{},
}

// UnsafeMethods returns the names of the unsafe RPC methods that the node
// implements, sorted.
func UnsafeMethods() []string {
	out := make([]string, 0, len(unsafeMethods))
	for name := range unsafeMethods {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// errUnsafe is the refusal of an unsafe method by a node run with
// --rpc-methods safe: polkadot-sdk's UnsafeRpcError
// (substrate/client/rpc-api/src/policy.rs), which jsonrpsee sends as
// ErrorCode::MethodNotFound with this message and no data.
var errUnsafe = &Error{Code: CodeMethodNotFound, Message: "RPC call is unsafe to be called externally"}

func constant(v any) method {
	return func(*call) (any, error) { return v, nil }
}

func rpcMethods(*call) (any, error) {
	names := make([]string, 0, len(methods))
	for name := range methods {
		names = append(names, name)
	}
	slices.Sort(names)
	return map[string]any{"methods": names}, nil
}

func testEcho(c *call) (any, error) {
	if c.params == nil {
		return json.RawMessage("null"), nil
	}
	return c.params, nil
}

// maxBig bounds test_big so that a typo cannot exhaust memory.
const maxBig = 256 << 20

func testBig(c *call) (any, error) {
	var size int64
	if err := c.args(&size); err != nil {
		return nil, err
	}
	if size < 0 || size > maxBig {
		return nil, errInvalidParams("size must be in [0, %d]", maxBig)
	}
	return strings.Repeat("x", int(size)), nil
}

func systemSyncState(c *call) (any, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	best := c.n.chain.best().number
	return map[string]uint64{"startingBlock": 0, "currentBlock": best, "highestBlock": best}, nil
}

// chainGetBlockHash takes nothing (best), a number, a hex number string, or
// a list of those; unknown heights give null.
func chainGetBlockHash(c *call) (any, error) {
	var arg json.RawMessage
	if err := c.args(&arg); err != nil {
		return nil, err
	}
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if len(arg) == 0 || string(arg) == "null" {
		return c.n.chain.best().hash, nil
	}
	if arg[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(arg, &list); err != nil {
			return nil, errInvalidParams("%v", err)
		}
		out := make([]any, len(list))
		for i, item := range list {
			h, err := c.n.hashAt(item)
			if err != nil {
				return nil, err
			}
			out[i] = h
		}
		return out, nil
	}
	return c.n.hashAt(arg)
}

// hashAt resolves one block number; n.mu is held.
func (n *Node) hashAt(raw json.RawMessage) (any, error) {
	var num uint64
	var s string
	switch {
	case json.Unmarshal(raw, &num) == nil:
	case json.Unmarshal(raw, &s) == nil:
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			return nil, errInvalidParams("invalid block number %q", s)
		}
		num = v
	default:
		return nil, errInvalidParams("invalid block number %s", raw)
	}
	if b := n.chain.byNumber(num); b != nil {
		return b.hash, nil
	}
	return nil, nil
}

// blockArg resolves the optional block hash argument; n.mu is held. A nil
// block with a nil error means an unknown hash.
func (c *call) blockArg() (*block, error) {
	var hash *string
	if err := c.args(&hash); err != nil {
		return nil, err
	}
	if hash == nil {
		return c.n.chain.best(), nil
	}
	return c.n.chain.byHash(strings.ToLower(*hash)), nil
}

func chainGetHeader(c *call) (any, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	b, err := c.blockArg()
	if b == nil || err != nil {
		return nil, err
	}
	return b.header, nil
}

func chainGetBlock(c *call) (any, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	b, err := c.blockArg()
	if b == nil || err != nil {
		return nil, err
	}
	return map[string]any{
		"block":          map[string]any{"header": b.header, "extrinsics": []string{}},
		"justifications": nil,
	}, nil
}

func chainGetFinalizedHead(c *call) (any, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	return c.n.chain.finalized.hash, nil
}

func stateGetRuntimeVersion(c *call) (any, error) {
	return c.n.static.runtime, nil
}

func stateGetMetadata(c *call) (any, error) {
	return c.n.static.metadataHex, nil
}

// stateCall serves the runtime calls that @polkadot/api makes on start.
func stateCall(c *call) (any, error) {
	var name, data string
	var at *string
	if err := c.args(&name, &data, &at); err != nil {
		return nil, err
	}
	switch {
	case name == "Metadata_metadata_versions":
		return metadataVersionsHex, nil
	case name == "Metadata_metadata_at_version" && data == "0x0f000000":
		return c.n.static.atVersionHex, nil
	case name == "Metadata_metadata_at_version":
		return "0x00", nil // None
	}
	return nil, &Error{
		Code:    codeClientError,
		Message: "Client error: Execution failed: Exported method " + name + " is not found",
	}
}

// args decodes positional params into dst; missing trailing params keep
// their zero values.
func (c *call) args(dst ...any) error {
	if len(c.params) == 0 || string(c.params) == "null" {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(c.params, &list); err != nil {
		return errInvalidParams("params must be an array")
	}
	if len(list) > len(dst) {
		return errInvalidParams("expected at most %d params, got %d", len(dst), len(list))
	}
	for i, raw := range list {
		if err := json.Unmarshal(raw, dst[i]); err != nil {
			return errInvalidParams("param %d: %v", i, err)
		}
	}
	return nil
}
