package wssproxy

import (
	"strings"

	"github.com/wssgate/wssgate/internal/jsonrpc"
)

// A subFamily is one kind of node subscription: the methods that open it,
// the methods that end it, and, for those the node ends by itself, how a
// notification says it was the last.
type subFamily struct {
	subscribe    []string // the method first, then its aliases
	unsubscribe  []string
	notification string                   // method of its notifications; "" if unknown
	last         func(result []byte) bool // nil: only an unsubscribe ends it
	// shared: its notifications are the same for every client with the
	// same parameters, so shared mode opens it once on the node.
	shared bool
}

// subFamilies lists every subscription a Substrate/Polkadot node serves.
// Method names are from the #[subscription(name = ..., aliases = ...,
// unsubscribe = ..., unsubscribe_aliases = ...)] attributes; paths are in
// paritytech/polkadot-sdk unless said otherwise. The chainSpec_v1_* methods
// of the new API subscribe to nothing.
var subFamilies = []*subFamily{
	// substrate/client/rpc-api/src/chain/mod.rs
	{
		subscribe:    []string{"chain_subscribeAllHeads"},
		unsubscribe:  []string{"chain_unsubscribeAllHeads"},
		notification: "chain_allHead",
		shared:       true,
	},
	{
		subscribe:    []string{"chain_subscribeNewHeads", "subscribe_newHead", "chain_subscribeNewHead"},
		unsubscribe:  []string{"chain_unsubscribeNewHeads", "unsubscribe_newHead", "chain_unsubscribeNewHead"},
		notification: "chain_newHead",
		shared:       true,
	},
	{
		subscribe:    []string{"chain_subscribeFinalizedHeads", "chain_subscribeFinalisedHeads"},
		unsubscribe:  []string{"chain_unsubscribeFinalizedHeads", "chain_unsubscribeFinalisedHeads"},
		notification: "chain_finalizedHead",
		shared:       true,
	},
	// substrate/client/rpc-api/src/state/mod.rs
	{
		subscribe:    []string{"state_subscribeRuntimeVersion", "chain_subscribeRuntimeVersion"},
		unsubscribe:  []string{"state_unsubscribeRuntimeVersion", "chain_unsubscribeRuntimeVersion"},
		notification: "state_runtimeVersion",
		shared:       true,
	},
	{
		subscribe:    []string{"state_subscribeStorage"},
		unsubscribe:  []string{"state_unsubscribeStorage"},
		notification: "state_storage",
		shared:       true,
	},
	// substrate/client/rpc-api/src/author/mod.rs; the statuses are
	// TransactionStatus in substrate/client/transaction-pool/api/src/lib.rs.
	{
		subscribe:    []string{"author_submitAndWatchExtrinsic"},
		unsubscribe:  []string{"author_unwatchExtrinsic"},
		notification: "author_extrinsicUpdate",
		last:         lastTransactionStatus,
	},
	// substrate/client/consensus/grandpa/rpc/src/lib.rs
	{
		subscribe:    []string{"grandpa_subscribeJustifications"},
		unsubscribe:  []string{"grandpa_unsubscribeJustifications"},
		notification: "grandpa_justifications",
		shared:       true,
	},
	// substrate/client/consensus/beefy/rpc/src/lib.rs
	{
		subscribe:    []string{"beefy_subscribeJustifications"},
		unsubscribe:  []string{"beefy_unsubscribeJustifications"},
		notification: "beefy_justifications",
		shared:       true,
	},
	// substrate/client/rpc-api/src/statement/mod.rs
	{
		subscribe:    []string{"statement_subscribeStatement"},
		unsubscribe:  []string{"statement_unsubscribeStatement"},
		notification: "statement_statement",
	},
	// substrate/client/rpc-spec-v2/src/chain_head/api.rs: a follow ends with
	// the "stop" event.
	{
		subscribe:    []string{"chainHead_v1_follow"},
		unsubscribe:  []string{"chainHead_v1_unfollow"},
		notification: "chainHead_v1_followEvent",
		last:         lastEvent("stop"),
	},
	// substrate/client/rpc-spec-v2/src/transaction/api.rs
	{
		subscribe:    []string{"transactionWatch_v1_submitAndWatch"},
		unsubscribe:  []string{"transactionWatch_v1_unwatch"},
		notification: "transactionWatch_v1_watchEvent",
		last:         lastEvent("finalized", "error", "invalid", "dropped"),
	},
	// substrate/client/rpc-spec-v2/src/archive/api.rs
	{
		subscribe:    []string{"archive_v1_storage"},
		unsubscribe:  []string{"archive_v1_stopStorage"},
		notification: "archive_v1_storageEvent",
		last:         lastEvent("storageDone", "storageError"),
	},
	{
		subscribe:    []string{"archive_v1_storageDiff"},
		unsubscribe:  []string{"archive_v1_storageDiff_stopStorageDiff"},
		notification: "archive_v1_storageDiffEvent",
		last:         lastEvent("storageDiffDone", "storageDiffError"),
	},
	// The same APIs before they were stabilised, still served by nodes
	// built from polkadot-sdk releases of 2023 and 2024.
	{
		subscribe:    []string{"chainHead_unstable_follow"},
		unsubscribe:  []string{"chainHead_unstable_unfollow"},
		notification: "chainHead_unstable_followEvent",
		last:         lastEvent("stop"),
	},
	{
		subscribe:    []string{"transactionWatch_unstable_submitAndWatch"},
		unsubscribe:  []string{"transactionWatch_unstable_unwatch"},
		notification: "transactionWatch_unstable_watchEvent",
		last:         lastEvent("finalized", "error", "invalid", "dropped"),
	},
	{
		subscribe:    []string{"archive_unstable_storage"},
		unsubscribe:  []string{"archive_unstable_stopStorage"},
		notification: "archive_unstable_storageEvent",
		last:         lastEvent("storageDone", "storageError"),
	},
	// Frontier (polkadot-evm/frontier client/rpc-core/src/eth_pubsub.rs),
	// on EVM parachains.
	{
		subscribe:    []string{"eth_subscribe"},
		unsubscribe:  []string{"eth_unsubscribe"},
		notification: "eth_subscription",
	},
}

// otherSubscription stands for a method that looks like a subscription but
// is in no family: a chain's own RPC extension. It is counted like the
// others, and any unsubscribe-like method of the same id ends it.
var otherSubscription = &subFamily{}

var (
	subscribeFamily   = map[string]*subFamily{}
	unsubscribeFamily = map[string]*subFamily{}
	notifyFamily      = map[string]*subFamily{}
)

func init() {
	for _, f := range subFamilies {
		for _, m := range f.subscribe {
			subscribeFamily[m] = f
		}
		for _, m := range f.unsubscribe {
			unsubscribeFamily[m] = f
		}
		if f.last != nil {
			notifyFamily[f.notification] = f
		}
	}
}

// subscribeOf returns the family method subscribes to, or nil.
func subscribeOf(method string) *subFamily {
	if f := subscribeFamily[method]; f != nil {
		return f
	}
	if _, m, ok := strings.Cut(method, "_"); ok && (strings.HasPrefix(m, "subscribe") ||
		strings.HasSuffix(m, "submitAndWatch") || strings.HasSuffix(m, "_follow")) {
		return otherSubscription
	}
	return nil
}

// unsubscribeOf returns the family method unsubscribes from, or nil.
func unsubscribeOf(method string) *subFamily {
	if f := unsubscribeFamily[method]; f != nil {
		return f
	}
	if _, m, ok := strings.Cut(method, "_"); ok && (strings.HasPrefix(m, "unsubscribe") ||
		strings.HasPrefix(m, "unwatch") || strings.HasSuffix(m, "_unwatch") || strings.HasSuffix(m, "_unfollow")) {
		return otherSubscription
	}
	return nil
}

// ends reports whether an unsubscribe of family u ends a subscription of
// family f.
func (f *subFamily) endedBy(u *subFamily) bool {
	return f == u || f == otherSubscription || u == otherSubscription
}

// lastTransactionStatus reports whether an author_extrinsicUpdate result is
// a final TransactionStatus (serde camelCase): finalized, usurped,
// finalityTimeout (objects), dropped or invalid (strings). The node sends
// nothing after it.
func lastTransactionStatus(result []byte) bool {
	if s, ok := jsonrpc.Unquote(result); ok {
		return s == "dropped" || s == "invalid"
	}
	for _, k := range [...]string{"finalized", "usurped", "finalityTimeout"} {
		if _, ok := jsonrpc.Member(result, k); ok {
			return true
		}
	}
	return false
}

// lastEvent returns a func reporting whether a new-API result's "event"
// is one of events.
func lastEvent(events ...string) func([]byte) bool {
	return func(result []byte) bool {
		raw, ok := jsonrpc.Member(result, "event")
		if !ok {
			return false
		}
		ev, ok := jsonrpc.Unquote(raw)
		for _, e := range events {
			if ok && ev == e {
				return true
			}
		}
		return false
	}
}
