package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

func TestConnsLeases(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	stA, _ := newStore(t, srv.Addr)
	stB, _ := newStore(t, srv.Addr)
	a := &redisstore.Conns{Store: stA, PerKey: 2, Total: 3, TTL: 300 * time.Millisecond}
	b := &redisstore.Conns{Store: stB, PerKey: 2, Total: 3, TTL: 300 * time.Millisecond}
	t.Cleanup(func() { b.Close() })

	relA, err := a.Acquire("k1")
	if err != nil {
		t.Fatal(err)
	}
	relA() // release is immediate
	relA() // and once only
	if n, _ := a.Count(ctx, "k1"); n != 0 {
		t.Fatalf("Count after release = %d, want 0", n)
	}
	if _, err := a.Acquire("k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire("k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire("k1"); !errors.Is(err, ratelimit.ErrTooManyForKey) {
		t.Fatalf("third lease for k1 on another replica: err = %v, want ErrTooManyForKey", err)
	}
	if _, err := b.Acquire("k2"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire("k3"); !errors.Is(err, ratelimit.ErrTooMany) {
		t.Fatalf("fourth lease in all: err = %v, want ErrTooMany", err)
	}

	// The heartbeat keeps the leases past their TTL: wait two TTLs,
	// watching the expiry scores move.
	rdb := srv.Client(t)
	first, _ := rdb.ZScore(ctx, "wssgate:{conns}:total", redisstore.ReplicaID(a)+":2").Result()
	waitFor(t, "two heartbeats", func() bool {
		s, _ := rdb.ZScore(ctx, "wssgate:{conns}:total", redisstore.ReplicaID(a)+":2").Result()
		return s >= first+600
	})
	if n, err := a.InUse(ctx); err != nil || n != 3 {
		t.Fatalf("InUse after two TTLs = %d, %v; want 3", n, err)
	}

	// Close releases a replica's leases at once and stops its heartbeat.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if redisstore.Beating(a) {
		t.Error("heartbeat still running after Close")
	}
	if n, _ := b.InUse(ctx); n != 2 {
		t.Errorf("InUse after one replica's Close = %d, want the other's 2", n)
	}
}

func TestConnsHeartbeatStopsWhenIdle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st, _ := newStore(t, srv.Addr)
	c := &redisstore.Conns{Store: st, TTL: 150 * time.Millisecond}
	rel, err := c.Acquire("k")
	if err != nil {
		t.Fatal(err)
	}
	if !redisstore.Beating(c) {
		t.Fatal("no heartbeat while a lease is held")
	}
	rel()
	waitFor(t, "the heartbeat to stop with no lease held", func() bool { return !redisstore.Beating(c) })
	if _, err := c.Acquire("k"); err != nil || !redisstore.Beating(c) {
		t.Errorf("Acquire after the heartbeat stopped: err %v, beating %v; want a new heartbeat", err, redisstore.Beating(c))
	}
	c.Close()
}

func TestConnsFallback(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, tc := range []struct {
		mode redisstore.Mode
		want []error // nil: acquired
	}{
		{redisstore.FallbackLocal, []error{nil, ratelimit.ErrTooManyForKey}},
		{redisstore.FailOpen, []error{nil, nil}},
		{redisstore.FailClosed, []error{ratelimit.ErrTooMany, ratelimit.ErrTooMany}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			st, _ := newStore(t, srv.Addr)
			st.Client.Close()
			c := &redisstore.Conns{Store: st, PerKey: 1, Mode: tc.mode}
			for i, want := range tc.want {
				_, err := c.Acquire("k")
				if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
					t.Errorf("Acquire %d: err = %v, want %v", i, err, want)
				}
			}
			if s := st.Status(); s.Up || s.Fallbacks["conns"] != 2 {
				t.Errorf("Status = %+v, want down with 2 fallbacks", s)
			}
		})
	}
}

func TestConnsValidate(t *testing.T) {
	t.Parallel()
	c := &redisstore.Conns{PerKey: -1, Total: -2, TTL: time.Millisecond, Mode: -1}
	_, err := c.Acquire("k")
	for _, want := range []string{"Conns.Store is nil or has no Client", "Conns.PerKey -1", "Conns.Total -2", "Conns.TTL 1ms", "Conns.Mode Mode(-1)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Acquire with bad fields: err = %v, want it to name %q", err, want)
		}
	}
}
