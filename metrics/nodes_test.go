package metrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/wssgate/wssgate/wssproxy"
)

// TestCountersNodeState: the NodeState hook's gauges, in the snapshot and the
// Prometheus text, and nodes_all_unhealthy following the nodes' health.
func TestCountersNodeState(t *testing.T) {
	t.Parallel()
	c := NewCounters()
	var buf bytes.Buffer
	c.WritePrometheus(&buf)
	if strings.Contains(buf.String(), "wssgate_node_best_block") || strings.Contains(buf.String(), "nodes_all_unhealthy") {
		t.Errorf("node gauges before any NodeState:\n%s", buf.String())
	}

	c.nodeState("a:1", wssproxy.NodeStatus{Healthy: true, BestBlock: 120, FinalizedBlock: 118, SecondsSinceHead: 4.5, Peers: 7, UnsafeMethods: wssproxy.UnsafeRefused})
	c.nodeState("b:2", wssproxy.NodeStatus{Healthy: false, BestBlock: 100, FinalizedBlock: 40, SecondsSinceHead: 190, Lag: 20, Syncing: true, UnsafeMethods: wssproxy.UnsafeServed})
	c.nodeState("c:3", wssproxy.NodeStatus{Healthy: false, SecondsSinceHead: -1, UnsafeMethods: wssproxy.UnsafeUnknown})
	want := NodeGauges{
		NodeBestBlock:        map[string]int64{"a:1": 120, "b:2": 100, "c:3": 0},
		NodeFinalizedBlock:   map[string]int64{"a:1": 118, "b:2": 40, "c:3": 0},
		NodeSecondsSinceHead: map[string]int64{"a:1": 4, "b:2": 190},
		NodeBlockLag:         map[string]int64{"a:1": 0, "b:2": 20, "c:3": 0},
		NodePeers:            map[string]int64{"a:1": 7, "b:2": 0, "c:3": 0},
		NodeSyncing:          map[string]int64{"a:1": 0, "b:2": 1, "c:3": 0},
		NodeUnsafeMethods:    map[string]int64{"a:1": 0, "b:2": 1},
	}
	if diff := cmp.Diff(want, c.Snapshot().NodeGauges); diff != "" {
		t.Errorf("NodeGauges (-want +got):\n%s", diff)
	}
	buf.Reset()
	c.WritePrometheus(&buf)
	for _, line := range []string{
		`wssgate_node_best_block{upstream="a:1"} 120`,
		`wssgate_node_finalized_block{upstream="b:2"} 40`,
		`wssgate_node_seconds_since_head{upstream="b:2"} 190`,
		`wssgate_node_block_lag{upstream="b:2"} 20`,
		`wssgate_node_peers{upstream="a:1"} 7`,
		`wssgate_node_syncing{upstream="b:2"} 1`,
		`wssgate_node_serves_unsafe_methods{upstream="b:2"} 1`,
		"wssgate_nodes_all_unhealthy 0",
	} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("Prometheus text lacks %q", line)
		}
	}
	parsePrometheus(t, buf.String())

	c.nodeState("a:1", wssproxy.NodeStatus{Healthy: false, BestBlock: 120})
	if got := c.Snapshot().NodesAllUnhealthy; got != 1 {
		t.Errorf("nodes_all_unhealthy %d with every node unhealthy, want 1", got)
	}
}
