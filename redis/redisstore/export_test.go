package redisstore

import "time"

// SetLimiterClock makes l decide at now() instead of Redis TIME, before
// its first use.
func SetLimiterClock(l *Limiter, now func() time.Time) { l.now = now }

// DenialsLen returns how many refusals l remembers.
func DenialsLen(l *Limiter) int { l.init(); return l.denials.len() }

// ReplicaID returns the prefix of the lease ids c takes.
func ReplicaID(c *Conns) string { c.init(); return c.replica }

// Beating reports whether c's heartbeat goroutine runs.
func Beating(c *Conns) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.beating }
