package wssproxy

import "time"

// Metrics is a set of hooks that receive what the proxy does, for
// monitoring, in the manner of [net/http/httptrace.ClientTrace]: any hook
// may be nil, and a nil hook costs nothing, so adding a hook in a later
// version breaks no caller. The metrics package
// (github.com/wssgate/wssgate/metrics) provides hooks wired to counters
// exported as Prometheus text and expvar.
//
// Hooks are called on handshakes, refusals, dials, health checks and
// connection ends, never once per message: traffic arrives as deltas at
// most every few seconds per connection. They may be called from many
// goroutines at once and must not block.
//
// upstream is the node's host:port as configured.
type Metrics struct {
	// Refused is called exactly once for each request the gateway refuses
	// with an HTTP error status (WebSocket handshake or plain HTTP), with
	// why. A refused handshake is not followed by ConnOpened.
	Refused func(Refusal)

	// ConnOpened is called when a client's WebSocket handshake succeeded
	// and the client is spliced to the node upstream; in shared mode
	// upstream is "shared", and the client's traffic is reported when it
	// ends.
	ConnOpened func(upstream string)

	// ConnClosed is called once for each connection ConnOpened reported,
	// when it ends.
	ConnClosed func(upstream string, e ConnEnd)

	// Traffic adds messages and payload bytes moved since the last call
	// for a connection; toNode is the client to node direction.
	Traffic func(upstream string, toNode bool, msgs, bytes int64)

	// NodeDial is called after each attempt to open a WebSocket to a node,
	// with how long it took and why it failed (nil if it did not).
	NodeDial func(upstream string, latency time.Duration, err error)

	// NodeHealth is called with the result of each node health check (a
	// failed dial counts as one): nil if the node is healthy, else why not.
	NodeHealth func(upstream string, err error)

	// NodeState is called after each health check of a node (and failed
	// dial) with what the gateway knows of it: state, best and finalized
	// blocks, seconds since its last head, lag to the pool's best node,
	// peers, syncing, and whether it serves unsafe methods.
	NodeState func(upstream string, s NodeStatus)

	// Denied is called for each JSON-RPC call answered by the gateway
	// instead of the node, with why: "method" (the policy), "rate", "subscriptions"
	// (MaxSubscriptions), "tracked" (MaxTrackedCalls, MaxHeldBytes), and in shared
	// mode "queue" (ShareOptions.Queue, ClientQueue) and "backlog"
	// (ShareOptions.ClientBacklog).
	Denied func(reason string)

	// Cache is called in shared mode for each call the response cache
	// could answer (see ShareOptions.CacheBytes): hit is true when it did,
	// false when the call went to the node (or joined the same call in
	// flight).
	Cache func(method string, hit bool)
}

// Refusal describes a request the gateway refused.
type Refusal struct {
	// Reason is one of the Refusal* constants, such as [RefusalRate].
	Reason string
	// Status is the HTTP status sent to the client.
	Status int
	// WebSocket is true when the request was a WebSocket handshake.
	WebSocket bool
}

// ConnEnd describes how a connection ended.
type ConnEnd struct {
	Duration time.Duration
	// ClosedBy is "client", "node" or "gateway".
	ClosedBy string
	// ClientCode is the close code sent to the client, or -1 if none.
	ClientCode int
}

// Refusal reasons, as passed to [Metrics.Refused] and logged.
const (
	RefusalBadHandshake = "bad_handshake"
	RefusalOrigin       = "origin"
	RefusalShuttingDown = "shutting_down"
	RefusalNodeDown     = "node_unavailable"
	RefusalNodeTimeout  = "node_timeout"
	RefusalNodeRefused  = "node_refused"
	RefusalBodyTooLarge = "body_too_large"
	RefusalMethod       = "http_method" // a request with a body and a method other than POST
	RefusalRate         = "rate"
	RefusalConnsClient  = "conns_per_client"
	RefusalConnsTotal   = "conns_total"
	RefusalConnsNode    = "conns_per_node"
	RefusalUnhealthy    = "nodes_unhealthy" // every node unhealthy, with Options.StrictHealth
)

// hooks calls the proxy's Metrics hooks, skipping nil ones.
type hooks struct{ m Metrics }

func (h hooks) Refused(r Refusal) {
	if h.m.Refused != nil {
		h.m.Refused(r)
	}
}

func (h hooks) ConnOpened(upstream string) {
	if h.m.ConnOpened != nil {
		h.m.ConnOpened(upstream)
	}
}

func (h hooks) ConnClosed(upstream string, e ConnEnd) {
	if h.m.ConnClosed != nil {
		h.m.ConnClosed(upstream, e)
	}
}

func (h hooks) Traffic(upstream string, toNode bool, msgs, bytes int64) {
	if h.m.Traffic != nil {
		h.m.Traffic(upstream, toNode, msgs, bytes)
	}
}

func (h hooks) NodeDial(upstream string, latency time.Duration, err error) {
	if h.m.NodeDial != nil {
		h.m.NodeDial(upstream, latency, err)
	}
}

func (h hooks) NodeHealth(upstream string, err error) {
	if h.m.NodeHealth != nil {
		h.m.NodeHealth(upstream, err)
	}
}

func (h hooks) NodeState(upstream string, s NodeStatus) {
	if h.m.NodeState != nil {
		h.m.NodeState(upstream, s)
	}
}

func (h hooks) Denied(reason string) {
	if h.m.Denied != nil {
		h.m.Denied(reason)
	}
}

func (h hooks) Cache(method string, hit bool) {
	if h.m.Cache != nil {
		h.m.Cache(method, hit)
	}
}
