package metrics

import (
	"sync/atomic"

	"github.com/wssgate/wssgate/wssproxy"
)

// NodeGauges are the per-node gauges of a [Snapshot], from the
// [wssproxy.Metrics] NodeState hook, keyed by upstream, and whether every node is
// unhealthy. Maps are never nil.
type NodeGauges struct {
	NodeBestBlock        map[string]int64 `json:"node_best_block"`
	NodeFinalizedBlock   map[string]int64 `json:"node_finalized_block"`
	NodeSecondsSinceHead map[string]int64 `json:"node_seconds_since_head"` // at the last check; absent before the first head
	NodeBlockLag         map[string]int64 `json:"node_block_lag"`
	NodePeers            map[string]int64 `json:"node_peers"`
	NodeSyncing          map[string]int64 `json:"node_syncing"`               // 1 or 0
	NodeUnsafeMethods    map[string]int64 `json:"node_serves_unsafe_methods"` // 1 served, 0 refused; absent while unknown
	// NodesAllUnhealthy is 1 while every node that reported a state is
	// unhealthy, 0 otherwise (the gateway then serves from unhealthy
	// nodes, or refuses with Options.StrictHealth). It spans every proxy
	// that shares these Counters.
	NodesAllUnhealthy int64 `json:"nodes_all_unhealthy"`
}

// nodeState keeps the last state of a node. Unlike the other hooks it
// allocates (a copy of s), once per node and health check.
func (c *Counters) nodeState(upstream string, s wssproxy.NodeStatus) {
	c.nodes.get(upstream, OverflowLabel, c.limit()).Store(&s)
}

// counterNode holds a node's last state.
type counterNode = atomic.Pointer[wssproxy.NodeStatus]

func (c *Counters) nodeGauges() NodeGauges {
	g := NodeGauges{
		NodeBestBlock:        map[string]int64{},
		NodeFinalizedBlock:   map[string]int64{},
		NodeSecondsSinceHead: map[string]int64{},
		NodeBlockLag:         map[string]int64{},
		NodePeers:            map[string]int64{},
		NodeSyncing:          map[string]int64{},
		NodeUnsafeMethods:    map[string]int64{},
	}
	all, healthy := 0, 0
	for up, v := range c.nodes.load() {
		s := v.Load()
		if s == nil {
			continue
		}
		all++
		if s.Healthy {
			healthy++
		}
		g.NodeBestBlock[up] = int64(s.BestBlock)
		g.NodeFinalizedBlock[up] = int64(s.FinalizedBlock)
		if s.SecondsSinceHead >= 0 {
			g.NodeSecondsSinceHead[up] = int64(s.SecondsSinceHead)
		}
		g.NodeBlockLag[up] = int64(s.Lag)
		g.NodePeers[up] = int64(s.Peers)
		g.NodeSyncing[up] = b2i(s.Syncing)
		if s.UnsafeMethods != wssproxy.UnsafeUnknown {
			g.NodeUnsafeMethods[up] = b2i(s.UnsafeMethods == wssproxy.UnsafeServed)
		}
	}
	if all > 0 && healthy == 0 {
		g.NodesAllUnhealthy = 1
	}
	return g
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// nodeGauges writes the gauges; nothing before the first NodeState.
func (p *promWriter) nodeGauges(g NodeGauges) {
	if len(g.NodeBestBlock) == 0 {
		return
	}
	p.family1("node_best_block", "gauge", "The node's best block number.", "upstream", g.NodeBestBlock)
	p.family1("node_finalized_block", "gauge", "The node's finalized block number.", "upstream", g.NodeFinalizedBlock)
	p.family1("node_seconds_since_head", "gauge", "Seconds since the node's best block last changed, at the last health check.", "upstream", g.NodeSecondsSinceHead)
	p.family1("node_block_lag", "gauge", "Blocks the node trails the pool's best node.", "upstream", g.NodeBlockLag)
	p.family1("node_peers", "gauge", "The node's peers, from system_health.", "upstream", g.NodePeers)
	p.family1("node_syncing", "gauge", "Whether the node is syncing (1) or not (0).", "upstream", g.NodeSyncing)
	p.family1("node_serves_unsafe_methods", "gauge", "Whether the node serves unsafe RPC methods to the gateway (1) or refuses them (0).", "upstream", g.NodeUnsafeMethods)
	p.header("nodes_all_unhealthy", "gauge", "Whether every node is unhealthy (1) or not (0).")
	p.sample("nodes_all_unhealthy", "", g.NodesAllUnhealthy)
}
