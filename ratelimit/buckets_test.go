package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

type allowResult struct {
	OK    bool
	Retry time.Duration
}

func allowAt(b *Buckets, key string, at time.Time) allowResult {
	ok, d := b.AllowAt(key, at)
	return allowResult{ok, d}
}

func TestBucketsBurst(t *testing.T) {
	t.Parallel()
	t.Run("30 at once with rate 2 burst 5", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(2, 5)
		var got []allowResult
		for range 30 {
			got = append(got, allowAt(b, "203.0.113.7", t0))
		}
		var want []allowResult
		for i := range 30 {
			if i < 5 {
				want = append(want, allowResult{true, 0})
			} else {
				want = append(want, allowResult{false, 500 * time.Millisecond})
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("refusal consumes nothing", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(2, 5)
		for range 5 {
			b.AllowAt("k", t0)
		}
		got := []allowResult{
			allowAt(b, "k", t0.Add(100*time.Millisecond)),
			allowAt(b, "k", t0.Add(499*time.Millisecond)),
			allowAt(b, "k", t0.Add(500*time.Millisecond)),
			allowAt(b, "k", t0.Add(500*time.Millisecond)),
			allowAt(b, "k", t0.Add(3*time.Second)), // full again: 5 more
			allowAt(b, "k", t0.Add(3*time.Second)),
		}
		want := []allowResult{
			{false, 400 * time.Millisecond}, {false, time.Millisecond},
			{true, 0}, {false, 500 * time.Millisecond},
			{true, 0}, {true, 0},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("two clients do not share a bucket", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(2, 5)
		count := map[string]int{}
		for range 10 {
			for _, k := range []string{"203.0.113.7", "203.0.113.8"} {
				if ok, _ := b.AllowAt(k, t0); ok {
					count[k]++
				}
			}
		}
		if diff := cmp.Diff(map[string]int{"203.0.113.7": 5, "203.0.113.8": 5}, count); diff != "" {
			t.Errorf("allowed per key (-want +got):\n%s", diff)
		}
	})
	t.Run("Allow uses now", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 1, Burst: 1, now: func() time.Time { return t0 }}
		if ok, _ := b.Allow("k"); !ok {
			t.Fatal("first refused")
		}
		if ok, d := b.Allow("k"); ok || d != time.Second {
			t.Errorf("second = %v, %v; want refused, 1s", ok, d)
		}
	})
}

func TestBucketsZeroAndDefaults(t *testing.T) {
	t.Parallel()
	t.Run("zero Buckets allows all and keeps nothing", func(t *testing.T) {
		t.Parallel()
		var b Buckets
		for i := range 100 {
			if ok, d := b.Allow(strconv.Itoa(i % 3)); !ok || d != 0 {
				t.Fatalf("Allow = %v, %v", ok, d)
			}
		}
		if n := b.Len(); n != 0 {
			t.Errorf("Len = %d", n)
		}
		if err := b.Wait(context.Background(), "k"); err != nil {
			t.Error(err)
		}
	})
	t.Run("rate.Inf allows all", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(rate.Inf, 0)
		for range 10 {
			if ok, _ := b.AllowAt("k", t0); !ok {
				t.Fatal("refused")
			}
		}
	})
	t.Run("zero Burst is 1", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 1}
		got := []allowResult{allowAt(b, "k", t0), allowAt(b, "k", t0)}
		if diff := cmp.Diff([]allowResult{{true, 0}, {false, time.Second}}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("default IdleTimeout is the refill time", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(2, 5)
		b.init()
		if b.cfg.idle != 2500*time.Millisecond {
			t.Errorf("idle = %v", b.cfg.idle)
		}
		if got := (&Buckets{Rate: 1e-300}).config().idle; got != 1<<63-1 {
			t.Errorf("tiny rate: idle = %v, want max", got)
		}
	})
}

func TestBucketsValidate(t *testing.T) {
	t.Parallel()
	bad := &Buckets{Rate: -1, Burst: -2, MaxKeys: -3, IdleTimeout: -4}
	err := bad.Validate()
	for _, want := range []string{"ratelimit: Buckets.Rate", "Burst -2", "MaxKeys -3", "IdleTimeout -4ns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want mention of %q", err, want)
		}
	}
	mustPanic := func(name string, f func()) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
	mustPanic("NewBuckets", func() { NewBuckets(1, -1) })
	mustPanic("Allow", func() { (&Buckets{Rate: -1}).Allow("k") })
}

func TestBucketsEviction(t *testing.T) {
	t.Parallel()
	t.Run("200k keys stay within MaxKeys", func(t *testing.T) {
		t.Parallel()
		const maxKeys = 10_000
		b := &Buckets{Rate: 2, Burst: 5, MaxKeys: maxKeys}
		for i := range 200_000 {
			b.AllowAt("key"+strconv.Itoa(i), t0) // same instant: nothing is idle
			if i%1000 == 999 {
				if n := b.Len(); n > maxKeys {
					t.Fatalf("after %d keys, Len = %d > %d", i+1, n, maxKeys)
				}
			}
		}
		if n := b.Len(); n != maxKeys {
			t.Errorf("Len = %d, want %d (every shard full)", n, maxKeys)
		}
	})
	t.Run("small MaxKeys", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 1, MaxKeys: 3}
		for i := range 100 {
			b.AllowAt(strconv.Itoa(i), t0)
		}
		if n := b.Len(); n > 3 || n < 1 {
			t.Errorf("Len = %d, want 1..3", n)
		}
	})
	t.Run("least recently used goes first", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 1, Burst: 1, MaxKeys: 3, nshards: 1}
		for _, k := range []string{"a", "b", "c", "a", "d"} {
			b.AllowAt(k, t0)
		}
		if diff := cmp.Diff([]string{"d", "a", "c"}, lruKeys(&b.shards[0])); diff != "" {
			t.Errorf("keys, most recent first (-want +got):\n%s", diff)
		}
		// "a" kept its state: still empty.
		if ok, _ := b.AllowAt("a", t0); ok {
			t.Error("a was refilled")
		}
	})
	t.Run("idle keys dropped only once full", func(t *testing.T) {
		t.Parallel()
		b := &Buckets{Rate: 2, Burst: 5, nshards: 1}
		for i := range 100 {
			for range 5 { // empty each bucket
				b.AllowAt("old"+strconv.Itoa(i), t0)
			}
		}
		idle := 2500 * time.Millisecond
		for i := range 50 { // just before full: nothing dropped
			b.AllowAt("early"+strconv.Itoa(i), t0.Add(idle-1))
		}
		if n := b.Len(); n != 150 {
			t.Fatalf("Len = %d, want 150", n)
		}
		for _, e := range b.shards[0].m {
			if strings.HasPrefix(e.key, "old") {
				if tok := e.lim.TokensAt(t0.Add(idle)); tok != 5 {
					t.Fatalf("%s has %v tokens when idle, want 5", e.key, tok)
				}
			}
		}
		for i := range 50 { // each call sweeps up to 2 idle keys
			b.AllowAt("late"+strconv.Itoa(i), t0.Add(idle))
		}
		if n := b.Len(); n != 100 {
			t.Errorf("Len = %d, want 100 (the old keys dropped)", n)
		}
		for _, k := range lruKeys(&b.shards[0]) {
			if strings.HasPrefix(k, "old") {
				t.Fatalf("%s kept", k)
			}
		}
	})
}

// lruKeys lists sh's keys, most recently used first, checking that the
// list and the map agree.
func lruKeys(sh *bucketShard) []string {
	var keys []string
	for e := sh.lru.next; e != &sh.lru; e = e.next {
		if sh.m[e.key] != e {
			panic("list and map disagree on " + e.key)
		}
		keys = append(keys, e.key)
	}
	if len(keys) != len(sh.m) {
		panic("list and map lengths differ")
	}
	return keys
}

func TestBucketsConcurrent(t *testing.T) {
	t.Parallel()
	t.Run("one key", func(t *testing.T) {
		t.Parallel()
		b := NewBuckets(1, 100)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 100 {
					if ok, d := b.AllowAt("k", t0); ok {
						allowed.Add(1)
					} else if d <= 0 {
						t.Error("refused with retryAfter <= 0")
					}
				}
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 100 {
			t.Errorf("allowed %d of 1600, want exactly 100", n)
		}
	})
	t.Run("many keys", func(t *testing.T) {
		t.Parallel()
		const keys = 200
		b := &Buckets{Rate: 1, Burst: 5} // MaxKeys large enough that no shard overflows
		var allowed [keys]atomic.Int64
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range keys * 10 {
					k := (i + g*7) % keys
					if ok, _ := b.AllowAt(strconv.Itoa(k), t0); ok {
						allowed[k].Add(1)
					}
					b.Len()
				}
			})
		}
		wg.Wait()
		for k := range allowed {
			if n := allowed[k].Load(); n != 5 {
				t.Errorf("key %d: allowed %d, want 5", k, n)
			}
		}
	})
}

func TestBucketsWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := NewBuckets(10, 1) // a token every 100ms
		ctx := context.Background()
		start := time.Now()
		for i := range 3 {
			if err := b.Wait(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if got, want := time.Since(start), time.Duration(i)*100*time.Millisecond; got != want {
				t.Errorf("wait %d returned after %v, want %v", i, got, want)
			}
		}

		// A deadline too close fails at once and gives the token back.
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		before := time.Now()
		if err := b.Wait(short, "k"); !errors.Is(err, ErrLimited) || !strings.HasPrefix(err.Error(), "ratelimit: ") {
			t.Errorf("Wait = %v, want ErrLimited", err)
		}
		if time.Since(before) != 0 {
			t.Error("Wait with a short deadline blocked")
		}
		if ok, d := b.Allow("k"); ok || d != 100*time.Millisecond {
			t.Errorf("after failed Wait, Allow = %v, %v; want false, 100ms", ok, d)
		}

		// Cancellation returns ctx.Err and gives the reservation back.
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- b.Wait(cctx, "k") }()
		synctest.Wait()
		ccancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want context.Canceled", err)
		}
		if ok, d := b.Allow("k"); ok || d != 100*time.Millisecond {
			t.Errorf("after canceled Wait, Allow = %v, %v; want false, 100ms", ok, d)
		}
		time.Sleep(100 * time.Millisecond) // fake clock
		if ok, _ := b.Allow("k"); !ok {
			t.Error("token not back after 100ms")
		}

		if err := b.Wait(short, "k"); err == nil {
			t.Error("Wait with expired ctx succeeded")
		}
	})
}
