package wssproxy

import "time"

// Metrics receives what the proxy does, for monitoring. Its methods are
// called on handshakes, connection ends and keepalive ticks, never once
// per message: traffic arrives as deltas at most every few seconds per
// connection. Implementations must be safe for concurrent use and must not
// block. [NewCounters] is a standard-library implementation exported as
// Prometheus text and expvar.
//
// upstream is the node's host:port as configured.
type Metrics interface {
	// Handshake records one WebSocket handshake's outcome: "ok", or the
	// refusal reason (see [Refusal] values).
	Handshake(upstream string, outcome string)
	// Refused records a refused request (WebSocket or plain HTTP).
	Refused(reason string)
	// ConnOpened and ConnClosed bracket each proxied WebSocket connection.
	ConnOpened(upstream string)
	ConnClosed(upstream string, c ConnEnd)
	// Traffic adds messages and payload bytes moved; toNode is the client
	// to node direction.
	Traffic(upstream string, toNode bool, msgs, bytes int64)
	// NodeDial records how long dialing the node took, and whether it
	// failed.
	NodeDial(upstream string, latency time.Duration, err error)
	// NodeHealth records the result of a node health check.
	NodeHealth(upstream string, healthy bool)
	// Denied records a JSON-RPC call answered by the gateway instead of
	// the node, with why ("method", "rate", "subscriptions").
	Denied(reason string)
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
)

// nopMetrics is used when Options.Metrics is nil.
type nopMetrics struct{}

func (nopMetrics) Handshake(string, string)              {}
func (nopMetrics) Refused(string)                        {}
func (nopMetrics) ConnOpened(string)                     {}
func (nopMetrics) ConnClosed(string, ConnEnd)            {}
func (nopMetrics) Traffic(string, bool, int64, int64)    {}
func (nopMetrics) NodeDial(string, time.Duration, error) {}
func (nopMetrics) NodeHealth(string, bool)               {}
func (nopMetrics) Denied(string)                         {}
