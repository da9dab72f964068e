package redisstore

import (
	"hash/maphash"
	"sync"
	"time"
)

const (
	defaultMaxDenials = 1 << 16
	denialShards      = 16
)

// denials remembers, per key, until when a limiter refuses it, so that
// refused keys cost no Redis call until they may succeed. Memory is
// bounded: a full shard forgets an expired entry, or else an arbitrary
// one (which only costs a Redis call).
type denials struct {
	seed   maphash.Seed
	shards [denialShards]denialShard
}

type denialShard struct {
	mu  sync.Mutex
	m   map[string]time.Time
	max int
}

func (d *denials) init(max int) {
	if max == 0 {
		max = defaultMaxDenials
	}
	d.seed = maphash.MakeSeed()
	for i := range d.shards {
		d.shards[i].m = make(map[string]time.Time)
		d.shards[i].max = (max + denialShards - 1) / denialShards
	}
}

func (d *denials) shard(key string) *denialShard {
	return &d.shards[maphash.String(d.seed, key)%denialShards]
}

// get returns how long key stays refused, if it is.
func (d *denials) get(key string, now time.Time) (time.Duration, bool) {
	sh := d.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	until, ok := sh.m[key]
	if !ok {
		return 0, false
	}
	if !now.Before(until) {
		delete(sh.m, key)
		return 0, false
	}
	return until.Sub(now), true
}

// put remembers that key is refused from now until until.
func (d *denials) put(key string, now, until time.Time) {
	sh := d.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; !ok && len(sh.m) >= sh.max {
		sh.evict(now)
	}
	sh.m[key] = until
}

// evict drops one entry, preferring one that has expired by now among
// the few it looks at.
func (sh *denialShard) evict(now time.Time) {
	var victim string
	n := 0
	for k, t := range sh.m {
		victim = k
		if !t.After(now) || n >= 8 {
			break
		}
		n++
	}
	delete(sh.m, victim)
}

// len returns the number of remembered refusals.
func (d *denials) len() int {
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
