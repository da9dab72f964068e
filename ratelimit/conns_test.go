package ratelimit

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestConns(t *testing.T) {
	t.Parallel()
	t.Run("zero Conns is unlimited", func(t *testing.T) {
		t.Parallel()
		var c Conns
		var releases []func()
		for range 1000 {
			rel, err := c.Acquire("k")
			if err != nil {
				t.Fatal(err)
			}
			releases = append(releases, rel)
		}
		if c.Count("k") != 1000 || c.InUse() != 1000 {
			t.Errorf("Count = %d, InUse = %d, want 1000", c.Count("k"), c.InUse())
		}
		for _, rel := range releases {
			rel()
		}
		if c.Count("k") != 0 || c.InUse() != 0 {
			t.Errorf("after release: Count = %d, InUse = %d", c.Count("k"), c.InUse())
		}
	})
	t.Run("per-key cap 50", func(t *testing.T) {
		t.Parallel()
		c := &Conns{PerKey: 50}
		var releases []func()
		for i := range 50 {
			rel, err := c.Acquire("203.0.113.7")
			if err != nil {
				t.Fatalf("acquire %d: %v", i+1, err)
			}
			releases = append(releases, rel)
		}
		_, err := c.Acquire("203.0.113.7")
		if !errors.Is(err, ErrTooManyForKey) || errors.Is(err, ErrTooMany) {
			t.Fatalf("51st acquire: err = %v, want ErrTooManyForKey", err)
		}
		if rel, err := c.Acquire("203.0.113.8"); err != nil {
			t.Fatalf("other key: %v", err)
		} else {
			rel()
		}
		releases[0]()
		releases[0]() // extra call: no-op
		if n := c.Count("203.0.113.7"); n != 49 {
			t.Fatalf("Count = %d after one release (called twice), want 49", n)
		}
		if _, err := c.Acquire("203.0.113.7"); err != nil {
			t.Fatalf("after release: %v", err)
		}
		if _, err := c.Acquire("203.0.113.7"); !errors.Is(err, ErrTooManyForKey) {
			t.Fatalf("err = %v, want ErrTooManyForKey", err)
		}
	})
	t.Run("global cap", func(t *testing.T) {
		t.Parallel()
		c := &Conns{PerKey: 2, Total: 3}
		for _, k := range []string{"a", "a", "b"} {
			if _, err := c.Acquire(k); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.Acquire("c")
		if !errors.Is(err, ErrTooMany) || !strings.HasPrefix(err.Error(), "ratelimit: ") {
			t.Errorf("err = %v, want ErrTooMany", err)
		}
		if _, err := c.Acquire("a"); !errors.Is(err, ErrTooManyForKey) {
			t.Errorf("over both caps: err = %v, want ErrTooManyForKey first", err)
		}
		if c.Count("c") != 0 || c.InUse() != 3 {
			t.Errorf("refusal left state: Count(c) = %d, InUse = %d", c.Count("c"), c.InUse())
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		t.Parallel()
		c := &Conns{PerKey: -1, Total: -2}
		_, err := c.Acquire("k")
		if err == nil || errors.Is(err, ErrTooMany) || errors.Is(err, ErrTooManyForKey) ||
			!strings.Contains(err.Error(), "Conns.PerKey -1") || !strings.Contains(err.Error(), "Conns.Total -2") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestConnsConcurrent(t *testing.T) {
	t.Parallel()
	t.Run("per key exact", func(t *testing.T) {
		t.Parallel()
		c := &Conns{PerKey: 50}
		var (
			mu       sync.Mutex
			releases []func()
			refused  atomic.Int64
			wg       sync.WaitGroup
		)
		for range 200 {
			wg.Go(func() {
				rel, err := c.Acquire("k")
				if err != nil {
					if !errors.Is(err, ErrTooManyForKey) {
						t.Error(err)
					}
					refused.Add(1)
					return
				}
				mu.Lock()
				releases = append(releases, rel)
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(releases) != 50 || refused.Load() != 150 {
			t.Fatalf("acquired %d, refused %d; want 50, 150", len(releases), refused.Load())
		}
		for _, rel := range releases {
			wg.Go(rel)
			wg.Go(rel) // racing extra calls are no-ops
		}
		wg.Wait()
		if c.Count("k") != 0 || c.InUse() != 0 || connKeys(c) != 0 {
			t.Errorf("after release: Count = %d, InUse = %d, keys = %d", c.Count("k"), c.InUse(), connKeys(c))
		}
	})
	t.Run("total exact", func(t *testing.T) {
		t.Parallel()
		c := &Conns{Total: 100}
		var acquired, refused atomic.Int64
		var wg sync.WaitGroup
		for i := range 400 {
			wg.Go(func() {
				_, err := c.Acquire(strconv.Itoa(i))
				switch {
				case err == nil:
					acquired.Add(1)
				case errors.Is(err, ErrTooMany):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if acquired.Load() != 100 || refused.Load() != 300 || c.InUse() != 100 {
			t.Errorf("acquired %d, refused %d, InUse %d; want 100, 300, 100", acquired.Load(), refused.Load(), c.InUse())
		}
	})
	t.Run("churn never exceeds caps", func(t *testing.T) {
		t.Parallel()
		const perKey, total = 3, 10
		c := &Conns{PerKey: perKey, Total: total}
		var held [4]atomic.Int64
		var all atomic.Int64
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 300 {
					k := (g + i) % len(held)
					rel, err := c.Acquire(strconv.Itoa(k))
					if err != nil {
						continue
					}
					if n := held[k].Add(1); n > perKey {
						t.Errorf("key %d held %d > %d", k, n, perKey)
					}
					if n := all.Add(1); n > total {
						t.Errorf("held %d > %d in all", n, total)
					}
					all.Add(-1)
					held[k].Add(-1)
					rel()
				}
			})
		}
		wg.Wait()
		if c.InUse() != 0 || connKeys(c) != 0 {
			t.Errorf("InUse = %d, keys = %d after churn", c.InUse(), connKeys(c))
		}
	})
}

// connKeys counts the keys c remembers.
func connKeys(c *Conns) int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}
