package redisstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
	"github.com/wssgate/wssgate/wssproxy"
)

const (
	helperRedisEnv = "WSSGATE_TEST_REPLICA_REDIS"
	helperTTLEnv   = "WSSGATE_TEST_REPLICA_TTL"
)

// TestHelperReplicaProcess is not a test: TestReplicaKilledLeasesExpire
// runs it in a child process as a gateway replica, to kill it with
// SIGKILL. It prints its URL and lease id prefix, then serves until
// killed or until its stdin closes (the parent died).
func TestHelperReplicaProcess(t *testing.T) {
	addr := os.Getenv(helperRedisEnv)
	if addr == "" {
		t.Skip("helper process of TestReplicaKilledLeasesExpire")
	}
	ttl, err := time.ParseDuration(os.Getenv(helperTTLEnv))
	if err != nil {
		t.Fatal(err)
	}
	node := startNode(t)
	st, _ := newStore(t, addr)
	c := &redisstore.Conns{Store: st, Name: "conns", Total: 3, TTL: ttl}
	url := startReplica(t, node.URL(), wssproxy.Options{ConnLimit: c})
	fmt.Printf("REPLICA %s %s\n", url, redisstore.ReplicaID(c))
	io.Copy(io.Discard, os.Stdin)
}

// A replica killed with kill -9 cannot release its leases; they expire
// within the lease TTL and new connections are accepted again.
func TestReplicaKilledLeasesExpire(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	node := startNode(t)
	const ttl = 2 * time.Second
	st, _ := newStore(t, srv.Addr)
	conns := &redisstore.Conns{Store: st, Name: "conns", Total: 3, TTL: ttl}
	t.Cleanup(func() { conns.Close() })
	local := startReplica(t, node.URL(), wssproxy.Options{ConnLimit: conns})
	child, childID, cmd := startHelperReplica(t, srv.Addr, ttl)

	for _, url := range []string{child, child, local} {
		if code, _ := dial(t, url, "198.51.100.9"); code != 101 {
			t.Fatalf("dial %s: %s, want 101", url, statusText(code))
		}
	}
	if code, _ := dial(t, local, "198.51.100.9"); code != 503 {
		t.Fatalf("fourth connection: %s, want 503 (total 3 across replicas)", statusText(code))
	}

	rdb := srv.Client(t)
	ctx := context.Background()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	redisNow, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	leases, err := rdb.ZRangeWithScores(ctx, "wssgate:{conns}:total", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var childLeases int
	var lastExpiry time.Time
	for _, z := range leases {
		if !strings.HasPrefix(z.Member.(string), childID+":") {
			continue
		}
		childLeases++
		exp := time.UnixMilli(int64(z.Score))
		if exp.After(lastExpiry) {
			lastExpiry = exp
		}
		if exp.After(redisNow.Add(ttl)) {
			t.Errorf("dead replica's lease expires at %v, more than TTL %v after the kill (%v)", exp, ttl, redisNow)
		}
	}
	if childLeases != 2 {
		t.Fatalf("dead replica holds %d leases in Redis, want its 2", childLeases)
	}

	// Poll, as a client would retry, until a connection is accepted.
	deadline := killed.Add(ttl + 5*time.Second)
	for {
		code, _ := dial(t, local, "198.51.100.9")
		if code == 101 {
			break
		}
		if code != 503 {
			t.Fatalf("after the kill: %s, want 503 until the leases expire", statusText(code))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted %v after the kill (TTL %v)", time.Since(killed), ttl)
		}
		time.Sleep(20 * time.Millisecond) // a client's retry pause
	}
	took := time.Since(killed)
	t.Logf("kill -9 of a replica holding 2 of 3 leases: its leases expire %v after the kill (Redis clock); a new connection was accepted %v after the kill (lease TTL %v)",
		lastExpiry.Sub(redisNow).Round(time.Millisecond), took.Round(time.Millisecond), ttl)
	// The scores above bound the expiry exactly; this allows for the
	// polling handshakes of a loaded machine.
	if took > ttl+time.Second {
		t.Errorf("leases outlived the TTL: accepted %v after the kill, TTL %v", took, ttl)
	}
	if n, err := conns.InUse(ctx); err != nil || n != 2 {
		t.Errorf("InUse after expiry = %d, %v; want 2 (the local replica's)", n, err)
	}
}

// startHelperReplica re-runs this test binary as a replica process and
// returns its URL, its lease id prefix and the command.
func startHelperReplica(t *testing.T, redisAddr string, ttl time.Duration) (url, id string, cmd *exec.Cmd) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^TestHelperReplicaProcess$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), helperRedisEnv+"="+redisAddr, helperTTLEnv+"="+ttl.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "REPLICA ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("helper replica exited before printing its URL")
		}
		f := strings.Fields(line)
		return f[1], f[2], cmd
	case <-time.After(60 * time.Second):
		t.Fatal("helper replica did not start within 60s")
	}
	panic("unreachable")
}
