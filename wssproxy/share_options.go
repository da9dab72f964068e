package wssproxy

import "fmt"

// Defaults applied to zero fields of [ShareOptions].
const (
	// DefaultShareConnsPerNode is how many WebSocket connections shared
	// mode opens to each node.
	DefaultShareConnsPerNode = 4
	// DefaultShareInFlight is a Substrate node's
	// --rpc-message-buffer-capacity-per-connection: the calls one node
	// connection may have unanswered at once.
	DefaultShareInFlight = 64
	// DefaultShareQueue bounds the calls waiting in the gateway for a free
	// node connection, over all clients.
	DefaultShareQueue = 16384
	// DefaultShareClientQueue bounds the calls of one client key waiting
	// in the gateway.
	DefaultShareClientQueue = 256
	// DefaultShareClientBacklog bounds the messages (replies and
	// notifications) waiting to be written to one client.
	DefaultShareClientBacklog = 1024
	// DefaultShareCacheBytes bounds the response cache.
	DefaultShareCacheBytes = 64 << 20
)

// ShareOptions turns on shared mode (see [Options.Share]): many clients
// over a few node connections, subscriptions that are the same for every
// client opened once on the node, and a cache of answers that cannot
// change. The zero value gives the defaults each field documents.
type ShareOptions struct {
	// ConnsPerNode is how many WebSocket connections the gateway keeps
	// open to each node; every client's calls are carried over them, and
	// so are the health checks' new and finalized heads subscriptions
	// (see Options.StallTimeout), on which the clients' shared head
	// subscriptions ride when they can.
	// If zero, DefaultShareConnsPerNode (4).
	ConnsPerNode int

	// InFlight is how many calls one node connection may have awaiting
	// their replies; more wait in the gateway's queue. Keep it at or under
	// the node's --rpc-message-buffer-capacity-per-connection.
	// If zero, DefaultShareInFlight (64, the node's default).
	InFlight int

	// Queue bounds the calls waiting in the gateway for a node connection,
	// over all clients. Waiting calls are taken round robin by client key,
	// so a client with many calls waiting delays its own calls, not
	// others'. A call over the bound is answered with a -32005 error.
	// If zero, DefaultShareQueue.
	Queue int

	// ClientQueue bounds the calls of one client key (see Options.Key)
	// waiting in the gateway; a call over it gets a -32005 error.
	// If zero, DefaultShareClientQueue.
	ClientQueue int

	// ClientBacklog bounds the messages (replies and notifications) waiting
	// to be written to one client. A client that falls that far behind is
	// sent a JSON-RPC error and closed with 1008 (policy violation),
	// never silently skipped, and never slows other clients.
	// If zero, DefaultShareClientBacklog.
	ClientBacklog int

	// CacheBytes bounds the cache of answers that cannot change (calls
	// naming a block hash, the genesis hash, the chain's name), least
	// recently used first out. If zero, DefaultShareCacheBytes (64 MiB).
	// Negative disables the cache.
	CacheBytes int64
}

// withDefaults validates o and returns a copy with defaults applied.
func (o *ShareOptions) withDefaults() (*ShareOptions, error) {
	if o == nil {
		return nil, nil
	}
	c := *o
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"ConnsPerNode", &c.ConnsPerNode, DefaultShareConnsPerNode},
		{"InFlight", &c.InFlight, DefaultShareInFlight},
		{"Queue", &c.Queue, DefaultShareQueue},
		{"ClientQueue", &c.ClientQueue, DefaultShareClientQueue},
		{"ClientBacklog", &c.ClientBacklog, DefaultShareClientBacklog},
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			return nil, fmt.Errorf("wssproxy: Options.Share.%s is %d; it must not be negative", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultShareCacheBytes
	}
	return &c, nil
}
