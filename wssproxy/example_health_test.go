package wssproxy_test

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/wssproxy"
)

// ExampleProxy_Nodes reads what the health checks learned of a node: its
// state, heads, and whether it serves unsafe methods to the gateway (this
// one runs as with --rpc-methods safe).
func ExampleProxy_Nodes() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := rpctest.Start(&rpctest.Options{SafeRPCMethods: true, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	node.SetBestBlock(42)

	p, err := wssproxy.New(node.URL(), &wssproxy.Options{
		StallTimeout: 2 * time.Minute, // or derived from the block time
		StrictHealth: true,            // refuse clients while every node is unhealthy
		Logger:       quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// The first check runs at once; wait for its probe and the head.
	n := p.Nodes()[0]
	for deadline := time.Now().Add(10 * time.Second); (n.UnsafeMethods == wssproxy.UnsafeUnknown || n.BestBlock == 0 || n.FinalizedBlock == 0) && time.Now().Before(deadline); n = p.Nodes()[0] {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(n.State, n.BestBlock, n.FinalizedBlock, n.UnsafeMethods)
	// Output: healthy 42 42 refused
}
