package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wssgate/wssgate/ratelimit"
)

// DefaultLeaseTTL is how long a connection's lease outlives its
// replica's last heartbeat.
const DefaultLeaseTTL = 30 * time.Second

// acquireScript takes a lease for one holder if the key's and the total
// caps allow it. KEYS[1] the key's holders, KEYS[2] all holders (sorted
// sets scored by expiry, ms). ARGV: holder id, TTL ms, per-key cap,
// total cap (0 = none), now ms (0 = Redis TIME). Expired holders are
// dropped first. Returns {0} on success, {1, held} over the per-key cap,
// {2, held} over the total cap.
var acquireScript = redis.NewScript(`
local now = tonumber(ARGV[5])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local perKey, total = tonumber(ARGV[3]), tonumber(ARGV[4])
if perKey > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= perKey then return {1, n} end
end
if total > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= total then return {2, n} end
end
local ttl = tonumber(ARGV[2])
local exp = string.format('%d', now + ttl)
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return {0, 0}
`)

// renewScript extends leases. KEYS[1] all holders, KEYS[2..] each
// lease's key set; ARGV[1] TTL ms, ARGV[2..] the holder ids, in KEYS
// order. A lease that expired meanwhile (a replica cut off from Redis
// for longer than the TTL) is added back: its connection is still open.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local exp = string.format('%d', now + ttl)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], exp, ARGV[i])
  redis.call('PEXPIRE', KEYS[i], ttl)
  redis.call('ZADD', KEYS[1], exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return #KEYS - 1
`)

// releaseScript drops one lease: KEYS[1] the key's set, KEYS[2] all
// holders, ARGV[1] the holder id.
var releaseScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
`)

// countScript counts unexpired holders of KEYS[1].
var countScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// renewBatch bounds the leases renewed by one script call.
const renewBatch = 512

// Conns is a [ratelimit.ConnLimiter] whose caps hold across every
// replica: each open connection holds a lease in Redis, a member of two
// sorted sets (the client key's and the total) scored by its expiry.
//
// A replica renews its leases every TTL/3 from one heartbeat goroutine,
// which runs while the replica holds leases and stops when it holds none
// or on [Conns.Close]. Release removes a lease at once. A replica that
// dies (kill -9, a lost machine) stops renewing, and its leases expire
// within TTL: the next Acquire on any replica drops them, so they are
// never leaked.
//
// While Redis is unreachable, Mode decides (see [Store]); by default the
// Local limiter applies, and connections it admits are not counted in
// Redis when it comes back (they are until they close).
//
// The zero Conns is not usable: Store is required. Fields must not be
// changed after first use.
type Conns struct {
	// Store is the Redis connection and health state. Required.
	Store *Store

	// Name distinguishes these caps' keys from others' and labels their
	// fallback count. If empty, "conns".
	Name string

	// PerKey is how many connections one client key may hold across all
	// replicas. If zero, no per-key cap. Must not be negative.
	PerKey int

	// Total is how many connections all keys together may hold across
	// all replicas. If zero, no total cap. Must not be negative.
	Total int

	// TTL is how long a lease lives without a heartbeat: how long a dead
	// replica's connections keep counting. If zero, DefaultLeaseTTL.
	// Must be at least 100ms.
	TTL time.Duration

	// Mode is what happens while Redis is unreachable. If zero,
	// FallbackLocal.
	Mode Mode

	// Local caps connections while Redis is unreachable in FallbackLocal
	// mode. If nil, &ratelimit.Conns{PerKey: PerKey, Total: Total}.
	Local ratelimit.ConnLimiter

	once    sync.Once
	err     error
	local   ratelimit.ConnLimiter
	replica string
	seq     atomic.Uint64

	mu      sync.Mutex
	leases  map[string]string // holder id -> client key
	beating bool
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

var _ ratelimit.ConnLimiter = (*Conns)(nil)

// Validate reports whether c's fields are usable.
func (c *Conns) Validate() error {
	var errs []error
	if c.Store == nil || c.Store.Client == nil {
		errs = append(errs, errors.New("redisstore: Conns.Store is nil or has no Client"))
	}
	if c.PerKey < 0 {
		errs = append(errs, fmt.Errorf("redisstore: Conns.PerKey %d is negative", c.PerKey))
	}
	if c.Total < 0 {
		errs = append(errs, fmt.Errorf("redisstore: Conns.Total %d is negative", c.Total))
	}
	if c.TTL != 0 && c.TTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("redisstore: Conns.TTL %v is under 100ms", c.TTL))
	}
	if c.Mode < FallbackLocal || c.Mode > FailClosed {
		errs = append(errs, fmt.Errorf("redisstore: Conns.Mode %v is unknown", c.Mode))
	}
	return errors.Join(errs...)
}

func (c *Conns) init() error {
	c.once.Do(func() {
		if c.err = c.Validate(); c.err != nil {
			return
		}
		c.local = c.Local
		if c.local == nil {
			c.local = &ratelimit.Conns{PerKey: c.PerKey, Total: c.Total}
		}
		var b [8]byte
		rand.Read(b[:])
		c.replica = hex.EncodeToString(b[:])
		c.leases = make(map[string]string)
	})
	return c.err
}

func (c *Conns) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return DefaultLeaseTTL
}

func (c *Conns) name() string {
	if c.Name == "" {
		return "conns"
	}
	return c.Name
}

// The key's set and the total set share a hash tag, so the scripts work
// on Redis Cluster too.
func (c *Conns) keyOf(key string) string { return c.Store.key("{"+c.name()+"}", "key", key) }
func (c *Conns) totalKey() string        { return c.Store.key("{"+c.name()+"}", "total") }

// Acquire takes a lease for key. On failure err wraps
// [ratelimit.ErrTooManyForKey] (the key holds PerKey leases across all
// replicas) or [ratelimit.ErrTooMany] (Total is reached), as
// [ratelimit.Conns] does; a config error is returned as is.
func (c *Conns) Acquire(key string) (release func(), err error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	id := c.replica + ":" + strconv.FormatUint(c.seq.Add(1), 36)
	var res []int64
	err = c.Store.call(func(ctx context.Context) error {
		var err error
		res, err = acquireScript.Run(ctx, c.Store.Client, []string{c.keyOf(key), c.totalKey()},
			id, c.ttl().Milliseconds(), c.PerKey, c.Total, 0).Int64Slice()
		return err
	})
	if err != nil || len(res) != 2 {
		return c.fallback(key)
	}
	switch res[0] {
	case 1:
		return nil, fmt.Errorf("%w (%d held across replicas)", ratelimit.ErrTooManyForKey, res[1])
	case 2:
		return nil, fmt.Errorf("%w (%d held across replicas)", ratelimit.ErrTooMany, res[1])
	}
	c.hold(id, key)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			c.release(id, key)
		}
	}, nil
}

func (c *Conns) fallback(key string) (func(), error) {
	c.Store.countFallback(c.name())
	switch c.Mode {
	case FailOpen:
		return func() {}, nil
	case FailClosed:
		return nil, fmt.Errorf("%w (shared connection count unavailable)", ratelimit.ErrTooMany)
	}
	return c.local.Acquire(key)
}

// hold records a lease and makes sure the heartbeat runs.
func (c *Conns) hold(id, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leases[id] = key
	if c.beating || c.closed {
		return
	}
	c.beating = true
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.heartbeat(c.stop, c.done)
}

func (c *Conns) release(id, key string) {
	c.mu.Lock()
	delete(c.leases, id)
	c.mu.Unlock()
	// If this fails, the lease expires within TTL.
	c.Store.call(func(ctx context.Context) error {
		return releaseScript.Run(ctx, c.Store.Client, []string{c.keyOf(key), c.totalKey()}, id).Err()
	})
}

// heartbeat renews the leases every TTL/3 until none are held or stop
// is closed.
func (c *Conns) heartbeat(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(c.ttl() / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if len(c.leases) == 0 {
			c.beating = false
			c.mu.Unlock()
			return
		}
		keys := []string{c.totalKey()}
		args := []any{c.ttl().Milliseconds()}
		for id, key := range c.leases {
			keys = append(keys, c.keyOf(key))
			args = append(args, id)
		}
		c.mu.Unlock()
		c.renew(keys, args)
	}
}

func (c *Conns) renew(keys []string, args []any) {
	for len(keys) > 1 {
		n := min(len(keys)-1, renewBatch)
		k := append([]string{keys[0]}, keys[1:1+n]...)
		a := append([]any{args[0]}, args[1:1+n]...)
		// A renewal may take longer than a handshake call: it is off the
		// handshake path.
		err := c.Store.callTimeout(max(c.Store.timeout(), c.ttl()/6), func(ctx context.Context) error {
			return renewScript.Run(ctx, c.Store.Client, k, a...).Err()
		})
		if err != nil {
			return
		}
		keys = append(keys[:1], keys[1+n:]...)
		args = append(args[:1], args[1+n:]...)
	}
}

// InUse returns how many leases all replicas hold together, as Redis
// counts them now.
func (c *Conns) InUse(ctx context.Context) (int, error) {
	return c.count(ctx, c.totalKey())
}

// Count returns how many leases key holds across all replicas.
func (c *Conns) Count(ctx context.Context, key string) (int, error) {
	return c.count(ctx, c.keyOf(key))
}

func (c *Conns) count(ctx context.Context, k string) (int, error) {
	if err := c.init(); err != nil {
		return 0, err
	}
	n, err := countScript.Run(ctx, c.Store.Client, []string{k}).Int()
	if err != nil {
		return 0, fmt.Errorf("redisstore: counting leases: %w", err)
	}
	return n, nil
}

// Close stops the heartbeat and releases every lease this replica
// holds, in one call. Connections still open stay uncounted. Later
// Acquires still work but are not renewed. It returns the Redis error,
// if any; the leases then expire within TTL.
func (c *Conns) Close() error {
	if err := c.init(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	stop, done := c.stop, c.done
	if c.beating {
		close(stop)
		c.beating = false
	}
	leases := c.leases
	c.leases = make(map[string]string)
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	if len(leases) == 0 {
		return nil
	}
	return c.Store.callTimeout(max(c.Store.timeout(), time.Second), func(ctx context.Context) error {
		_, err := c.Store.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for id, key := range leases {
				p.ZRem(ctx, c.keyOf(key), id)
				p.ZRem(ctx, c.totalKey(), id)
			}
			return nil
		})
		return err
	})
}
