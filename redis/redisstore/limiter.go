package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wssgate/wssgate/ratelimit"
	"golang.org/x/time/rate"
)

// gcraScript decides one event with GCRA (the generic cell rate
// algorithm, a token bucket kept as one timestamp: the theoretical
// arrival time of the next event), in one round trip, on Redis's clock.
//
// KEYS[1] the key's TAT. ARGV[1] emission interval (µs per event),
// ARGV[2] burst tolerance (interval * burst, µs), ARGV[3] now in µs, or
// 0 to use Redis TIME. Returns {1, 0} if allowed, else {0, retry µs}.
// Times are whole microseconds, formatted with %d so that Lua does not
// write them in exponent notation.
var gcraScript = redis.NewScript(`
local now = tonumber(ARGV[3])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
`)

// Limiter is a [ratelimit.Limiter] shared by every replica through
// Redis: each key may have Burst events at once and Rate per second
// after that, counted across all replicas, like [ratelimit.Buckets] on
// one machine. Use it for Options.RequestLimit (handshakes and HTTP
// requests) and Options.ClientMessageLimit of wssproxy.
//
// Each decision is one Redis round trip (a Lua script on Redis's clock,
// so replicas' clocks do not matter). A refusal is remembered locally
// until its retry time: a client hammering over its limit costs Redis
// nothing more until it may succeed again, which is exact, since other
// replicas' events only push that time further out.
//
// While Redis is unreachable, Mode decides (see [Store]); by default
// the Local limiter applies.
//
// The zero Limiter is not usable: Store is required. Fields must not
// be changed after first use.
type Limiter struct {
	// Store is the Redis connection and health state. Required.
	Store *Store

	// Name distinguishes this limiter's keys from other limiters' and
	// labels its fallback count. If empty, "limit".
	Name string

	// Rate is how many events per second each key may have after its
	// burst. If zero (or rate.Inf), every event is allowed and Redis is
	// not called. Must not be negative.
	Rate rate.Limit

	// Burst is how many events a key may have at once. If zero, 1.
	Burst int

	// Mode is what happens while Redis is unreachable. If zero,
	// FallbackLocal.
	Mode Mode

	// Local decides while Redis is unreachable in FallbackLocal mode. If
	// nil, ratelimit.NewBuckets(Rate, Burst): each replica alone allows
	// the whole limit. Give each replica its share (Rate/N) to keep the
	// total near the limit.
	Local ratelimit.Limiter

	// MaxDenials caps how many keys' refusals are remembered locally. If
	// zero, 65536.
	MaxDenials int

	now func() time.Time // if set (tests), the script uses it, not Redis TIME

	once     sync.Once
	err      error
	local    ratelimit.Limiter
	interval int64 // µs
	tol      int64 // µs
	denials  denials
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// Validate reports whether l's fields are usable.
func (l *Limiter) Validate() error {
	var errs []error
	if l.Store == nil || l.Store.Client == nil {
		errs = append(errs, errors.New("redisstore: Limiter.Store is nil or has no Client"))
	}
	if l.Rate < 0 || math.IsNaN(float64(l.Rate)) {
		errs = append(errs, fmt.Errorf("redisstore: Limiter.Rate %v is negative or NaN", float64(l.Rate)))
	}
	if l.Burst < 0 {
		errs = append(errs, fmt.Errorf("redisstore: Limiter.Burst %d is negative", l.Burst))
	}
	if l.MaxDenials < 0 {
		errs = append(errs, fmt.Errorf("redisstore: Limiter.MaxDenials %d is negative", l.MaxDenials))
	}
	if l.Mode < FallbackLocal || l.Mode > FailClosed {
		errs = append(errs, fmt.Errorf("redisstore: Limiter.Mode %v is unknown", l.Mode))
	}
	return errors.Join(errs...)
}

func (l *Limiter) init() {
	l.once.Do(func() {
		if l.err = l.Validate(); l.err != nil {
			return
		}
		burst := max(l.Burst, 1)
		if l.unlimited() {
			return
		}
		l.interval = max(int64(math.Round(1e6/float64(l.Rate))), 1)
		l.tol = l.interval * int64(burst)
		l.local = l.Local
		if l.local == nil {
			l.local = ratelimit.NewBuckets(l.Rate, burst)
		}
		l.denials.init(l.MaxDenials)
	})
	if l.err != nil {
		panic(l.err)
	}
}

func (l *Limiter) unlimited() bool { return l.Rate == 0 || l.Rate == rate.Inf }

func (l *Limiter) name() string {
	if l.Name == "" {
		return "limit"
	}
	return l.Name
}

func (l *Limiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// Allow reports whether one event for key may happen now, counting it
// against the limit shared by all replicas. If not, retryAfter is how
// long until it may. It panics if the fields are invalid; call
// Validate when configuring.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	l.init()
	if l.unlimited() {
		return true, 0
	}
	now := l.clock()
	if d, denied := l.denials.get(key, now); denied {
		return false, d
	}
	var nowArg int64
	if l.now != nil {
		nowArg = now.UnixMicro()
	}
	var res []int64
	err := l.Store.call(func(ctx context.Context) error {
		var err error
		res, err = gcraScript.Run(ctx, l.Store.Client, []string{l.Store.key("rate", l.name(), key)},
			l.interval, l.tol, nowArg).Int64Slice()
		return err
	})
	if err != nil || len(res) != 2 {
		return l.fallback(key)
	}
	if res[0] == 1 {
		return true, 0
	}
	retry := time.Duration(res[1]) * time.Microsecond
	l.denials.put(key, now, now.Add(retry))
	return false, retry
}

func (l *Limiter) fallback(key string) (bool, time.Duration) {
	l.Store.countFallback(l.name())
	switch l.Mode {
	case FailOpen:
		return true, 0
	case FailClosed:
		return false, l.Store.retryInterval()
	}
	return l.local.Allow(key)
}
