package rpctest_test

import (
	"context"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/rpctest"
)

// TestFollowJS runs polkadot-api's substrate-client (e2e/follow.mjs)
// against the node's chainHead_v1 methods.
func TestFollowJS(t *testing.T) {
	rpctest.RequireE2E(t)
	n := start(t, &rpctest.Options{BlockInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := rpctest.RunFollow(ctx, n.URL())
	if err != nil {
		t.Fatal(err)
	}
	if res.Runtime == nil || *res.Runtime == "" || res.HeaderBytes < 90 || res.MetadataVersions != "0x080e0000000f000000" ||
		res.NewBlocks < 2 || res.Finalized < 2 || res.Unpinned < 1 {
		t.Errorf("follow: %+v", res)
	}
}
