package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wssgate/wssgate/internal/operator"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/redis/internal/redistest"
)

// start runs one replica until the test ends and returns its address.
func start(t *testing.T, args ...string) string {
	t.Helper()
	r := &replica{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan operator.Addrs, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- r.program().Run(ctx, args, io.Discard, &logs, ready) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.close()
	})
	select {
	case a := <-ready:
		return a.TLS
	case err := <-done:
		t.Fatalf("replica: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("replica did not start")
	}
	return ""
}

func dial(t *testing.T, addr string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	c, res, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return res, err
}

// TestSharedConnCap: two replicas with the same -redis share
// -max-conns-per-client: a client holding its one connection on replica
// A is refused on replica B. Without -redis each replica counts alone.
func TestSharedConnCap(t *testing.T) {
	srv := redistest.Start(t)
	node, err := rpctest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	common := []string{"-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "", "-upstream", node.URL(),
		"-max-conns-per-client", "1"}
	shared := append([]string{"-redis", "redis://" + srv.Addr + "/0"}, common...)
	a, b := start(t, shared...), start(t, shared...)
	if _, err := dial(t, a); err != nil {
		t.Fatal(err)
	}
	if res, err := dial(t, b); err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second connection of the client on the other replica: %v, want 429", err)
	}
	alone := start(t, common...)
	if _, err := dial(t, alone); err != nil {
		t.Errorf("a replica without -redis counts alone, yet refused: %v", err)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := (&replica{}).program().Run(context.Background(), []string{"-h"}, &out, io.Discard, nil)
	s := out.String()
	if err == nil || !strings.HasPrefix(s, "wssgate-redis is") || !strings.Contains(s, "-redis string   [WSSGATE_REDIS]") {
		t.Errorf("-h: %v\n%s", err, s)
	}
}
