package wssproxy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// Policy decides which JSON-RPC methods, and which parameter forms of
// them, clients may call.
//
// Names match case-sensitively, as the node matches them. An entry ending in
// "*" is a prefix pattern: "chain_*" matches every method starting with
// "chain_", and "*" alone matches every method.
//
// The zero Policy is the safe default, the same as a nil *Policy and
// [DefaultPolicy]: it refuses the node's [UnsafeMethods] and the unsafe
// parameter forms of safe methods (see [Policy.AllowStorageScans] and
// state_subscribeStorage below), and allows everything else. Allow and Deny
// narrow it further; no list widens it, so an empty or mistyped allow list
// never exposes author_insertKey. The only policy that lets unsafe calls
// through is the one [AllowAll] returns.
//
// Parameter rules: state_subscribeStorage without a non-empty list of keys
// streams every storage change of every block, and the node refuses that
// form to external callers; the gateway refuses it too, since a node with
// the default --rpc-methods auto on 127.0.0.1 counts the gateway as local.
//
// A Policy compiles its lists on first use; do not modify its fields after
// the first call to Check or Validate. A Policy is safe for concurrent use.
type Policy struct {
	// Allow, if non-empty, lists the only methods clients may call.
	// If empty, every method not denied is allowed.
	Allow []string

	// Deny lists methods that are always refused; it wins over Allow.
	// The node's UnsafeMethods are refused whether listed or not, unless
	// the Policy comes from AllowAll.
	Deny []string

	// AllowStorageScans lets clients call state_getStorageSize and
	// state_getStorageSizeAt. When the key holds no value, the node sums
	// the sizes of every key under it as a prefix, with no timeout: a call
	// on "0x" scans the whole state. The node refuses that scan to external
	// callers but serves it to the gateway, so by default the gateway
	// refuses both methods. If false, they are refused.
	AllowStorageScans bool

	once     sync.Once
	compiled *policyTable
	unsafe   bool // built by AllowAll: no implicit unsafe list, no parameter rules
}

// MethodError is the error [Policy.Check] returns for a refused method.
type MethodError struct {
	Method string
	Reason string
}

func (e *MethodError) Error() string {
	return "wssproxy: method " + e.Method + " is not allowed: " + e.Reason
}

// DefaultPolicy returns a new policy that denies [UnsafeMethods] and their
// unsafe parameter forms, and allows everything else: the zero Policy. It is
// what the proxy uses when Options.Policy is nil.
func DefaultPolicy() *Policy {
	return &Policy{}
}

// AllowAll returns a new policy that allows every method and every
// parameter form, the node's unsafe ones included. Use it only when the
// node itself refuses unsafe methods (--rpc-methods safe) or every client is
// trusted. Deny may still be set on the result.
func AllowAll() *Policy {
	return &Policy{unsafe: true, AllowStorageScans: true}
}

// Check returns nil if method may be forwarded to the node, or a
// *[MethodError] saying why not. It does not allocate when it allows. An
// invalid Policy (see [Policy.Validate]) refuses every method. A nil *Policy
// behaves as [DefaultPolicy].
func (p *Policy) Check(method string) error {
	t := p.table()
	if t.invalid != "" {
		return &MethodError{Method: method, Reason: t.invalid}
	}
	if reason, ok := t.denyExact[method]; ok {
		return &MethodError{Method: method, Reason: reason}
	}
	for _, e := range t.denyPrefix {
		if strings.HasPrefix(method, e.prefix) {
			return &MethodError{Method: method, Reason: e.reason}
		}
	}
	if t.allowList && !t.allowed(method) {
		return &MethodError{Method: method, Reason: "not in the gateway's Policy.Allow list"}
	}
	if reason, ok := t.unsafe[method]; ok {
		return &MethodError{Method: method, Reason: reason}
	}
	return nil
}

func (t *policyTable) allowed(method string) bool {
	if _, ok := t.allowExact[method]; ok {
		return true
	}
	for _, prefix := range t.allowPrefix {
		if strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return false
}

// CheckParams is [Policy.Check] with the parameter rules: it returns nil
// if a call of method with params, its raw JSON params (nil if absent), may
// be forwarded to the node, or a *[MethodError] saying why not.
func (p *Policy) CheckParams(method string, params []byte) error {
	if err := p.Check(method); err != nil {
		return err
	}
	t := p.table()
	if !t.paramRules {
		return nil
	}
	switch method {
	case "state_subscribeStorage":
		if keys, _ := jsonrpc.Param(params, 0, "keys"); jsonrpc.IsEmpty(keys) {
			return &MethodError{Method: method, Reason: "without a non-empty list of keys it streams every " +
				"storage change (an unsafe form the node refuses to external callers); pass the keys to watch"}
		}
	case "state_getStorageSize", "state_getStorageSizeAt":
		if !t.scans {
			return &MethodError{Method: method, Reason: "on a key prefix it makes the node scan the state with no " +
				"timeout (an unsafe form the node refuses to external callers); the gateway allows it only with " +
				"Policy.AllowStorageScans (examples/basic: -allow-storage-scans)"}
		}
	}
	return nil
}

// Validate reports every invalid entry in Allow and Deny: an empty name, a
// name containing white space or control characters, or a "*" anywhere but
// at the end. A nil *Policy is valid.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	var errs []error
	for i, name := range p.Allow {
		if problem := policyEntryProblem(name); problem != "" {
			errs = append(errs, fmt.Errorf("wssproxy: Policy.Allow[%d] %q: %s", i, name, problem))
		}
	}
	for i, name := range p.Deny {
		if problem := policyEntryProblem(name); problem != "" {
			errs = append(errs, fmt.Errorf("wssproxy: Policy.Deny[%d] %q: %s", i, name, problem))
		}
	}
	return errors.Join(errs...)
}

func policyEntryProblem(name string) string {
	if name == "" {
		return "empty method name"
	}
	if i := strings.IndexByte(name, '*'); i >= 0 && i != len(name)-1 {
		return `"*" is allowed only at the end, as a prefix pattern`
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == 0x85 || r == 0xa0 {
			return "contains white space or a control character"
		}
	}
	return ""
}

// policyTable is a Policy compiled for lookups.
type policyTable struct {
	invalid     string            // non-empty: refuse everything, with this reason
	unsafe      map[string]string // UnsafeMethods, unless AllowAll: checked last
	paramRules  bool              // the parameter rules apply (not AllowAll)
	scans       bool              // AllowStorageScans
	denyExact   map[string]string // method -> reason
	denyPrefix  []policyPrefix    // longest first
	allowList   bool
	allowExact  map[string]struct{}
	allowPrefix []string
}

type policyPrefix struct {
	prefix, reason string
}

var policyForNil = DefaultPolicy()

func (p *Policy) table() *policyTable {
	if p == nil {
		p = policyForNil
	}
	p.once.Do(func() { p.compiled = p.compile() })
	return p.compiled
}

func (p *Policy) compile() *policyTable {
	if err := p.Validate(); err != nil {
		return &policyTable{invalid: "the gateway's method policy is invalid"}
	}
	t := &policyTable{
		denyExact:  make(map[string]string, len(p.Deny)),
		allowList:  len(p.Allow) > 0,
		allowExact: make(map[string]struct{}, len(p.Allow)),
		paramRules: !p.unsafe,
		scans:      p.AllowStorageScans,
	}
	for _, name := range p.Deny {
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			t.denyPrefix = append(t.denyPrefix, policyPrefix{prefix, p.denyReason(name, false)})
		} else {
			t.denyExact[name] = p.denyReason(name, false)
		}
	}
	if !p.unsafe {
		t.unsafe = make(map[string]string, len(UnsafeMethods))
		for _, name := range UnsafeMethods {
			t.unsafe[name] = p.denyReason(name, true)
		}
	}
	for _, name := range p.Allow {
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			t.allowPrefix = append(t.allowPrefix, prefix)
		} else {
			t.allowExact[name] = struct{}{}
		}
	}
	// Longest prefix first, so a refusal names the most specific entry.
	sort.SliceStable(t.denyPrefix, func(i, j int) bool {
		return len(t.denyPrefix[i].prefix) > len(t.denyPrefix[j].prefix)
	})
	return t
}

func (p *Policy) denyReason(entry string, implicit bool) string {
	what, unsafe := unsafeMethodKinds[entry]
	switch {
	case unsafe && implicit:
		return "unsafe node method (" + what + "); denied by the gateway's default policy"
	case unsafe:
		return "unsafe node method (" + what + "); denied by the gateway's Policy.Deny"
	}
	return fmt.Sprintf("denied by the gateway's Policy.Deny entry %q", entry)
}

// UnsafeMethods lists the methods a Substrate/Polkadot node guards with its
// deny_unsafe check (sc_rpc_api::check_if_safe). The node serves them to
// connections it considers local, and with the default --rpc-methods auto a
// node listening on 127.0.0.1 considers the gateway local, so without this
// list every internet client could call them. [DefaultPolicy] denies them.
//
// Sources are paths in paritytech/polkadot-sdk (method names from the
// #[method(name = ...)] attributes, guards from the implementations).
// Not listed because the node does not guard them as whole methods:
// state_getStorageSize and state_subscribeStorage (only some params are
// refused), state_getKeysPaged (a count limit), sync_state_genSyncSpec,
// system_reservedPeers and the childstate_* methods (no guard).
var UnsafeMethods = []string{
	// substrate/client/rpc/src/author/mod.rs (check_if_safe in each)
	"author_hasKey",
	"author_hasSessionKeys",
	"author_insertKey",
	"author_removeExtrinsic",
	"author_rotateKeys",
	"author_rotateKeysWithOwner",

	// substrate/client/consensus/babe/rpc/src/lib.rs
	"babe_epochAuthorship",

	// substrate/client/rpc/src/dev/mod.rs ("All methods are unsafe")
	"dev_getBlockStats",

	// substrate/client/rpc/src/offchain/mod.rs
	"offchain_localStorageClear",
	"offchain_localStorageGet",
	"offchain_localStorageSet",

	// substrate/client/rpc/src/state/mod.rs
	"state_getPairs",
	"state_queryStorage",
	"state_traceBlock",

	// substrate/utils/frame/rpc/state-trie-migration-rpc/src/lib.rs
	"state_trieMigrationStatus",

	// substrate/client/rpc/src/statement/mod.rs
	"statement_dump",

	// substrate/client/rpc/src/system/mod.rs
	"system_addLogFilter",
	"system_addReservedPeer",
	"system_peers",
	"system_removeReservedPeer",
	"system_resetLogFilter",
	"system_unstable_networkState",
	// The name of system_unstable_networkState before its rename
	// (client/rpc-api/src/system/mod.rs in the older paritytech/substrate).
	"system_networkState",

	// substrate/utils/frame/rpc/system/src/lib.rs (alias system_dryRunAt)
	"system_dryRun",
	"system_dryRunAt",
}

// unsafeMethodKinds says what each of UnsafeMethods exposes, for refusals.
var unsafeMethodKinds = map[string]string{
	"author_hasKey":                "keystore",
	"author_hasSessionKeys":        "keystore",
	"author_insertKey":             "keystore",
	"author_rotateKeys":            "keystore",
	"author_rotateKeysWithOwner":   "keystore",
	"author_removeExtrinsic":       "transaction pool",
	"babe_epochAuthorship":         "keystore",
	"dev_getBlockStats":            "expensive debugging call",
	"offchain_localStorageClear":   "offchain storage",
	"offchain_localStorageGet":     "offchain storage",
	"offchain_localStorageSet":     "offchain storage",
	"state_getPairs":               "expensive state query",
	"state_queryStorage":           "expensive state query",
	"state_traceBlock":             "expensive block re-execution",
	"state_trieMigrationStatus":    "expensive state query",
	"statement_dump":               "statement store",
	"system_addLogFilter":          "node logs",
	"system_resetLogFilter":        "node logs",
	"system_addReservedPeer":       "node peers",
	"system_removeReservedPeer":    "node peers",
	"system_peers":                 "node peers",
	"system_unstable_networkState": "node peers",
	"system_networkState":          "node peers",
	"system_dryRun":                "runtime dry run",
	"system_dryRunAt":              "runtime dry run",
}

// allowsAll reports whether p refuses nothing, so messages need no
// reading.
func (p *Policy) allowsAll() bool {
	return p != nil && p.unsafe && p.AllowStorageScans && len(p.Allow) == 0 && len(p.Deny) == 0
}
