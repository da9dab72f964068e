package ratelimit

import "errors"

// Sentinel errors. Test for them with [errors.Is]; the errors actually
// returned may wrap them with more detail.
var (
	// ErrLimited reports that an event was refused by a rate limit.
	// [Buckets.Wait] wraps it when the wait would outlast the context's
	// deadline.
	ErrLimited = errors.New("ratelimit: rate limit exceeded")

	// ErrTooManyForKey reports that a key already holds its maximum number
	// of slots ([Conns.PerKey]). [ConnHandler] answers it with 429.
	ErrTooManyForKey = errors.New("ratelimit: too many connections for key")

	// ErrTooMany reports that the global cap on slots ([Conns.Total]) is
	// reached. [ConnHandler] answers it with 503.
	ErrTooMany = errors.New("ratelimit: too many connections")
)
