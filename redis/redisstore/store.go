package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied to zero fields of [Store].
const (
	// DefaultTimeout bounds each Redis call made on a handshake's path,
	// well under a handshake's budget: a Redis that does not answer in
	// time costs a client 75 ms, once, before the replica falls back.
	DefaultTimeout = 75 * time.Millisecond
	// DefaultRetryInterval is how often, while Redis is unreachable, one
	// call tries it again; the others go straight to the fallback.
	DefaultRetryInterval = time.Second
	// DefaultPrefix starts every key the store writes.
	DefaultPrefix = "wssgate"
)

// Mode says what a limiter does while Redis is unreachable.
type Mode int

const (
	// FallbackLocal applies the replica's own local limiter (each replica
	// then enforces its own copy of the limit, or its share if the local
	// limiter is configured so). It is the default.
	FallbackLocal Mode = iota
	// FailOpen allows everything while Redis is unreachable.
	FailOpen
	// FailClosed refuses everything while Redis is unreachable.
	FailClosed
)

// String returns "local", "open" or "closed".
func (m Mode) String() string {
	switch m {
	case FallbackLocal:
		return "local"
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Store is a Redis connection shared by the limiters, connection caps
// and certificate cache of one gateway replica, with the health state
// that decides when they fall back to local state.
//
// Every call has a timeout (Timeout). The first failed call marks Redis
// down: a WARN is logged once, [Store.Status] reports it for readiness
// pages, and users fall back according to their [Mode]. While down, one
// call per RetryInterval tries Redis again and the first success marks
// it up (logged at INFO), so shared enforcement resumes without a
// restart. Nothing runs in the background for this.
//
// Fields must not be changed after first use.
type Store struct {
	// Client is the Redis (or Valkey) client. Required. The Store does
	// not close it unless it came from [Open].
	Client redis.UniversalClient

	// Prefix starts every key. If empty, DefaultPrefix. Replicas that
	// share limits must use the same Prefix.
	Prefix string

	// Timeout bounds each Redis call of a limiter or connection cap.
	// If zero, DefaultTimeout.
	Timeout time.Duration

	// RetryInterval is how often a down Redis is tried again.
	// If zero, DefaultRetryInterval.
	RetryInterval time.Duration

	// Logger receives the WARN when Redis becomes unreachable and the
	// INFO when it is back. If nil, slog.Default().
	Logger *slog.Logger

	down     atomic.Bool
	lastTry  atomic.Int64 // unix nanos of the last call while down
	errCount atomic.Int64
	fallback sync.Map // store name -> *atomic.Int64

	mu        sync.Mutex
	lastErr   error
	downSince time.Time

	owned   bool // Client came from Open
	closeMu sync.Mutex
	closers []func() error
	closed  bool
}

// errDown is returned by call while Redis is marked down and it is not
// this call's turn to try it.
var errDown = errors.New("redisstore: redis is marked down")

func (s *Store) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s *Store) retryInterval() time.Duration {
	if s.RetryInterval > 0 {
		return s.RetryInterval
	}
	return DefaultRetryInterval
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Store) key(parts ...string) string {
	p := s.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	for _, x := range parts {
		p += ":" + x
	}
	return p
}

// call runs fn against Redis with the store's timeout, unless Redis is
// down and it is not yet time to try again (errDown). It records the
// outcome in the health state.
func (s *Store) call(fn func(ctx context.Context) error) error {
	return s.callTimeout(s.timeout(), fn)
}

func (s *Store) callTimeout(d time.Duration, fn func(ctx context.Context) error) error {
	if s.Client == nil {
		return errors.New("redisstore: Store.Client is nil")
	}
	if s.down.Load() {
		last := s.lastTry.Load()
		now := time.Now().UnixNano()
		if now-last < int64(s.retryInterval()) || !s.lastTry.CompareAndSwap(last, now) {
			return errDown
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := fn(ctx)
	s.observe(err)
	return err
}

// observe updates the health state after a Redis call.
func (s *Store) observe(err error) {
	if err == nil || errors.Is(err, redis.Nil) {
		if s.down.Load() {
			s.mu.Lock()
			since := s.downSince
			if s.down.Swap(false) {
				s.logger().Info("redis: reachable again; shared limits restored", "down_for", time.Since(since).Round(time.Millisecond))
			}
			s.mu.Unlock()
		}
		return
	}
	s.errCount.Add(1)
	s.lastTry.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if !s.down.Swap(true) {
		s.downSince = time.Now()
		s.logger().Warn("redis: unreachable; limits fall back to this replica's own", "err", err)
	}
}

// countFallback counts one decision made without Redis by store name.
func (s *Store) countFallback(name string) {
	v, ok := s.fallback.Load(name)
	if !ok {
		v, _ = s.fallback.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Check tries Redis now (a PING, whatever RetryInterval says) and
// updates the health state; it returns the error, if any.
func (s *Store) Check(ctx context.Context) error {
	if s.Client == nil {
		return errors.New("redisstore: Store.Client is nil")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	err := s.Client.Ping(ctx).Err()
	s.observe(err)
	return err
}

// Status is a Store's health, for readiness pages and metrics.
type Status struct {
	// Up is false while Redis is considered unreachable.
	Up bool `json:"up"`
	// DownSince is when Redis was last marked down; zero while up.
	DownSince time.Time `json:"down_since,omitzero"`
	// LastError is the error that marked Redis down, if it is down.
	LastError string `json:"last_error,omitempty"`
	// Errors counts failed Redis calls since the store was made.
	Errors int64 `json:"errors"`
	// Fallbacks counts, per limiter name, decisions made without Redis.
	Fallbacks map[string]int64 `json:"fallbacks"`
}

// Status returns the store's health. It does not contact Redis.
func (s *Store) Status() Status {
	st := Status{Up: !s.down.Load(), Errors: s.errCount.Load(), Fallbacks: map[string]int64{}}
	if !st.Up {
		s.mu.Lock()
		st.DownSince = s.downSince
		if s.lastErr != nil {
			st.LastError = s.lastErr.Error()
		}
		s.mu.Unlock()
	}
	s.fallback.Range(func(k, v any) bool {
		st.Fallbacks[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}

// Close closes the connection caps made with [Store.Conns] (releasing
// their leases) and, if the store came from [Open], the client. A
// second Close returns nil and does nothing.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	closers := s.closers
	s.closeMu.Unlock()
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	if s.owned {
		errs = append(errs, s.Client.Close())
	}
	return errors.Join(errs...)
}

func (s *Store) onClose(f func() error) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.closers = append(s.closers, f)
}
