package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter decides whether one event for a key may happen now. It is small
// enough to implement over a shared store such as Redis. *[Buckets]
// implements it.
type Limiter interface {
	// Allow reports whether one event for key may happen now. If not,
	// retryAfter (> 0) is how long until it may. A refused event
	// consumes nothing.
	Allow(key string) (ok bool, retryAfter time.Duration)
}

var _ Limiter = (*Buckets)(nil)

const (
	defaultMaxKeys = 1 << 16
	maxShards      = 64
	sweepPerCall   = 2 // idle entries checked per call
)

// Buckets keeps one token bucket ([rate.Limiter]) per key: each key may
// have Burst events at once and Rate per second after that. Keys live in
// sharded maps, so concurrent calls for different keys rarely contend.
//
// Upkeep is lazy and there is no goroutine, so Buckets needs no Close.
// Each call checks the least recently used keys of its shard and drops
// those idle for IdleTimeout; by default a key is dropped only once its
// bucket would be full again, so forgetting it grants nothing. A shard
// that is full drops its least recently used key, idle or not, so memory
// stays bounded by MaxKeys whatever the number of distinct keys.
//
// The zero Buckets allows every event (Rate zero means no limit). Fields
// must not be changed after first use; a Buckets must not be copied
// after first use.
type Buckets struct {
	// Rate is how many events per second each key may have after its
	// burst. If zero (or rate.Inf), every event is allowed and no state
	// is kept. Unlike a zero rate.Limit, zero does not mean "none"; to
	// refuse everything, do not serve. Must not be negative.
	Rate rate.Limit

	// Burst is the bucket size: how many events a key may have at once.
	// If zero, 1. Must not be negative.
	Burst int

	// MaxKeys caps how many keys are remembered. If zero, 65536: a key
	// takes about 190 bytes (BenchmarkBucketsMillionKeys), so about
	// 12 MB. It is split evenly between up
	// to 64 shards, and a full shard forgets its least recently used
	// key, which refills that key's bucket: under a flood of more
	// distinct keys than this, per-key limits weaken but memory does not
	// grow. As keys hash unevenly, forgetting may start a little before
	// MaxKeys keys in all. Must not be negative.
	MaxKeys int

	// IdleTimeout is how long a key may go unused before it is forgotten.
	// If zero, the time an empty bucket takes to refill (Burst/Rate), so
	// that forgetting a key never grants it extra tokens. A shorter value
	// saves memory but may let a client that pauses burst again early.
	// Must not be negative.
	IdleTimeout time.Duration

	now     func() time.Time // if nil, time.Now
	nshards int              // if zero, min(64, MaxKeys); tests set it

	once   sync.Once
	err    error // from Validate, at first use
	cfg    bucketsConfig
	seed   maphash.Seed
	epoch  time.Time
	shards []bucketShard
}

// bucketsConfig is a Buckets' fields with defaults applied.
type bucketsConfig struct {
	unlimited bool
	rate      rate.Limit
	burst     int
	idle      time.Duration
}

type bucketShard struct {
	mu  sync.Mutex
	m   map[string]*bucket
	lru bucket // sentinel: lru.next is the most recently used, lru.prev the least
	max int
	_   [64]byte // keep neighbouring shards' mutexes off one cache line
}

type bucket struct {
	key        string
	lim        *rate.Limiter
	last       time.Duration // last use (or reserved event), since Buckets.epoch
	prev, next *bucket
}

// NewBuckets returns Buckets allowing each key r events per second with
// bursts of burst, and default MaxKeys and IdleTimeout. It panics if r or
// burst is negative, like [time.NewTicker] on a bad interval.
func NewBuckets(r rate.Limit, burst int) *Buckets {
	b := &Buckets{Rate: r, Burst: burst}
	if err := b.Validate(); err != nil {
		panic(err)
	}
	return b
}

// Validate reports whether b's fields are usable: none negative and
// Rate not NaN. The other methods panic with this error if not.
func (b *Buckets) Validate() error {
	var errs []error
	if b.Rate < 0 || math.IsNaN(float64(b.Rate)) {
		errs = append(errs, fmt.Errorf("ratelimit: Buckets.Rate %v is negative or NaN", float64(b.Rate)))
	}
	if b.Burst < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Buckets.Burst %d is negative", b.Burst))
	}
	if b.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Buckets.MaxKeys %d is negative", b.MaxKeys))
	}
	if b.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Buckets.IdleTimeout %v is negative", b.IdleTimeout))
	}
	return errors.Join(errs...)
}

func (b *Buckets) init() {
	b.once.Do(func() {
		if b.err = b.Validate(); b.err != nil {
			return
		}
		b.cfg = b.config()
		b.seed = maphash.MakeSeed()
		b.epoch = b.nowTime()
		maxKeys := b.MaxKeys
		if maxKeys == 0 {
			maxKeys = defaultMaxKeys
		}
		n := min(maxShards, maxKeys)
		if b.nshards > 0 {
			n = b.nshards
		}
		b.shards = make([]bucketShard, n)
		for i := range b.shards {
			sh := &b.shards[i]
			sh.m = make(map[string]*bucket)
			sh.lru.next, sh.lru.prev = &sh.lru, &sh.lru
			sh.max = maxKeys / n
			if i < maxKeys%n {
				sh.max++
			}
		}
	})
	if b.err != nil {
		panic(b.err)
	}
}

func (b *Buckets) config() bucketsConfig {
	c := bucketsConfig{rate: b.Rate, burst: b.Burst, idle: b.IdleTimeout}
	c.unlimited = c.rate == 0 || c.rate == rate.Inf
	if c.burst == 0 {
		c.burst = 1
	}
	if c.idle == 0 && !c.unlimited {
		c.idle = durationCeil(float64(c.burst) / float64(c.rate))
	}
	return c
}

// durationCeil converts seconds to a Duration, rounding up and
// saturating at the largest Duration.
func durationCeil(seconds float64) time.Duration {
	ns := math.Ceil(seconds * 1e9)
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

func (b *Buckets) nowTime() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Allow reports whether one event for key may happen now, consuming a
// token if so. If not, retryAfter is how long until the bucket holds a
// token again; a refusal consumes nothing.
func (b *Buckets) Allow(key string) (ok bool, retryAfter time.Duration) {
	return b.AllowAt(key, b.nowTime())
}

// AllowAt is like [Buckets.Allow] at time now. Times should not go
// backwards by much; a bucket simply does not refill while they do.
func (b *Buckets) AllowAt(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	b.init()
	if b.cfg.unlimited {
		return true, 0
	}
	sh := b.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := b.touch(sh, key, now)
	if e.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, b.cfg.waitFor(e.lim.TokensAt(now))
}

// waitFor returns how long until a bucket holding tokens has one, at
// least 1ns. It rounds to the nearest nanosecond: rate.Limiter allows an
// event when less than 1ns of refill is missing, so the event is allowed
// at now+waitFor, and exact values (500ms) stay exact despite float error.
func (c *bucketsConfig) waitFor(tokens float64) time.Duration {
	ns := math.Round((1 - tokens) / float64(c.rate) * 1e9)
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(time.Duration(ns), 1)
}

// Wait blocks until one event for key may happen, consuming its token,
// or until ctx is done. Waiters for a key are served in order of arrival,
// since each reserves a future token. If ctx has a deadline too close for
// the token, Wait returns at once with an error wrapping [ErrLimited]; if
// ctx ends first, ctx.Err() and the reservation is given back.
func (b *Buckets) Wait(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.init()
	if b.cfg.unlimited {
		return nil
	}
	now := b.nowTime()
	sh := b.shard(key)
	sh.mu.Lock()
	e := b.touch(sh, key, now)
	r := e.lim.ReserveN(now, 1) // OK: burst >= 1
	delay := r.DelayFrom(now)
	if dl, ok := ctx.Deadline(); ok && delay > dl.Sub(now) {
		r.CancelAt(now) // nothing reserved since, so this restores the token exactly
		sh.mu.Unlock()
		return fmt.Errorf("ratelimit: waiting %v would pass the context deadline: %w", delay, ErrLimited)
	}
	// The bucket is empty at now+delay, so it is full idle later.
	e.last = max(e.last, now.Add(delay).Sub(b.epoch))
	sh.mu.Unlock()
	if delay == 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.CancelAt(b.nowTime())
		return ctx.Err()
	}
}

// Len returns how many keys are remembered. It is at most MaxKeys.
func (b *Buckets) Len() int {
	b.init()
	n := 0
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func (b *Buckets) shard(key string) *bucketShard {
	h := maphash.String(b.seed, key)
	return &b.shards[h%uint64(len(b.shards))]
}

// touch returns key's bucket, creating it if need be, marks it used at
// now and drops idle or surplus buckets. sh.mu must be held.
func (b *Buckets) touch(sh *bucketShard, key string, now time.Time) *bucket {
	t := now.Sub(b.epoch)
	e := sh.m[key]
	if e != nil {
		sh.unlink(e)
	} else {
		if len(sh.m) >= sh.max {
			sh.remove(sh.lru.prev) // least recently used
		}
		e = &bucket{key: key, lim: rate.NewLimiter(b.cfg.rate, b.cfg.burst), last: t}
		sh.m[key] = e
	}
	e.last = max(e.last, t)
	sh.pushFront(e)
	for range sweepPerCall {
		old := sh.lru.prev
		if old == e || t-old.last < b.cfg.idle {
			break
		}
		sh.remove(old)
	}
	return e
}

func (sh *bucketShard) pushFront(e *bucket) {
	e.prev, e.next = &sh.lru, sh.lru.next
	e.prev.next, e.next.prev = e, e
}

func (sh *bucketShard) unlink(e *bucket) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (sh *bucketShard) remove(e *bucket) {
	sh.unlink(e)
	delete(sh.m, e.key)
}
