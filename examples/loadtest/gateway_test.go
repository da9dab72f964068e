package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/internal/operator"
	"github.com/wssgate/wssgate/internal/rpctest"
	"github.com/wssgate/wssgate/wssproxy"
)

// TestAgainstGateway runs loadtest as a user would against the operator
// gateway in front of a node: the default -method is a cheap read the
// node serves, the gateway's message limit answers -32005, and loadtest
// keeps going, counts the errors by kind, prints the hint and keeps the
// measured results.
func TestAgainstGateway(t *testing.T) {
	node, err := rpctest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan operator.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- (&operator.Program{}).Run(ctx, []string{"-listen", "127.0.0.1:0", "-admin-listen", "", "-self-signed-dir", "",
			"-upstream", node.URL(), "-msg-rate", "20", "-msg-burst", "20"}, io.Discard, io.Discard, ready)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addrs operator.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
	}

	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"-url", "wss://" + addrs.TLS, "-insecure", "-mode", "rtt", "-n", "100", "-warmup", "0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "the results above are what was measured") {
		t.Errorf("run: %v; want an error that keeps the results", err)
	}
	table := out.String()
	for _, want := range []string{"system_health\n", "rpc -32005", "hint", "-msg-rate"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if !strings.Contains(errOut.String(), "loadtest: hint:") {
		t.Errorf("no hint on stderr:\n%s", errOut.String())
	}
	r, _ := runJSON(t, "-url", "wss://"+addrs.TLS, "-insecure", "-mode", "rtt", "-n", "60", "-warmup", "0")
	if r.Msgs < 1 || r.ErrorKinds["rpc -32005"] < 1 || r.Msgs+r.ErrorKinds["rpc -32005"] < 60 || r.Hint == "" {
		t.Errorf("msgs %d, kinds %v, hint %q; want measured calls, counted -32005 refusals and a hint", r.Msgs, r.ErrorKinds, r.Hint)
	}
}

// TestServeHealthy: a gateway's health checks find the echo upstream
// healthy (system_health over POST), so benchmarks measure a gateway
// serving from a healthy node.
func TestServeHealthy(t *testing.T) {
	url, _ := startServe(t, false)
	p, err := wssproxy.New(url, &wssproxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for s := p.Nodes()[0]; s.Peers != 1 || !s.Healthy || s.BestBlock == 0; s = p.Nodes()[0] {
		if time.Now().After(deadline) {
			t.Fatalf("echo upstream not checked healthy: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
