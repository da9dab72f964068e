package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// ConnLimiter caps concurrent things, such as connections, per key and
// in total. *[Conns] implements it.
type ConnLimiter interface {
	// Acquire takes a slot for key. On success release must be called
	// exactly once when the slot is no longer used; further calls do
	// nothing. On failure err satisfies errors.Is with ErrTooManyForKey
	// (the key's cap) or ErrTooMany (the global cap).
	Acquire(key string) (release func(), err error)
}

var _ ConnLimiter = (*Conns)(nil)

// connShards is the number of shards of a Conns.
const connShards = 64

// Conns counts slots held per key and caps them, per key and in total,
// like Apache mod_qos's QS_SrvMaxConnPerIP and QS_SrvMaxConn. Counts are
// exact; a key is forgotten as soon as it holds no slot, so memory is
// proportional to the slots held.
//
// The zero Conns is ready to use and caps nothing. Fields must not be
// changed after first use; a Conns must not be copied after first use.
type Conns struct {
	// PerKey is how many slots one key may hold at once. If zero, no
	// per-key cap. Must not be negative.
	PerKey int

	// Total is how many slots all keys together may hold. If zero, no
	// global cap. Must not be negative.
	Total int

	once   sync.Once
	seed   maphash.Seed
	total  atomic.Int64
	shards [connShards]connShard
}

type connShard struct {
	mu sync.Mutex
	m  map[string]int
	_  [64]byte // keep neighbouring shards' mutexes off one cache line
}

// Validate reports whether c's fields are usable: none negative.
// Acquire returns this error if not.
func (c *Conns) Validate() error {
	var errs []error
	if c.PerKey < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Conns.PerKey %d is negative", c.PerKey))
	}
	if c.Total < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Conns.Total %d is negative", c.Total))
	}
	return errors.Join(errs...)
}

// Acquire takes a slot for key. On success the caller must call release
// once it is done; extra calls do nothing. On failure err wraps
// [ErrTooManyForKey] if key holds PerKey slots already, else
// [ErrTooMany] if all keys hold Total slots. The per-key cap is checked
// first, so a client over its own cap is told so even when the server
// is full. A config error from [Conns.Validate] is returned as is.
func (c *Conns) Acquire(key string) (release func(), err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	sh := c.shard(key)
	sh.mu.Lock()
	n := sh.m[key]
	if c.PerKey > 0 && n >= c.PerKey {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w (%d held)", ErrTooManyForKey, n)
	}
	if !c.takeTotal() {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w (%d held)", ErrTooMany, c.Total)
	}
	if sh.m == nil {
		sh.m = make(map[string]int)
	}
	sh.m[key] = n + 1
	sh.mu.Unlock()

	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			c.release(sh, key)
		}
	}, nil
}

// takeTotal counts one more slot, unless that would pass Total. A
// compare-and-swap loop, rather than add-then-undo, means a refusal is
// never caused by another caller's transient overshoot.
func (c *Conns) takeTotal() bool {
	for {
		n := c.total.Load()
		if c.Total > 0 && n >= int64(c.Total) {
			return false
		}
		if c.total.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *Conns) release(sh *connShard, key string) {
	sh.mu.Lock()
	if n := sh.m[key] - 1; n > 0 {
		sh.m[key] = n
	} else {
		delete(sh.m, key)
	}
	sh.mu.Unlock()
	c.total.Add(-1)
}

// Count returns how many slots key holds.
func (c *Conns) Count(key string) int {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}

// InUse returns how many slots all keys hold together.
func (c *Conns) InUse() int {
	return int(c.total.Load())
}

func (c *Conns) shard(key string) *connShard {
	return &c.shards[maphash.String(c.seed, key)%connShards]
}
