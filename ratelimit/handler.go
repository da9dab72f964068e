package ratelimit

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
)

// connRetryAfter is the Retry-After that ConnHandler sends: how long a
// connection will stay open is unknown, so it is only a hint to back off.
const connRetryAfter = 5 * time.Second

// Handler limits the rate of requests to next. A request whose key's
// [Limiter] refuses it gets 429 Too Many Requests, a Retry-After header
// (whole seconds, rounded up, at least 1) and a short text body; the
// others go to next. If key is nil, [RemoteAddr] is used. Handler panics
// if l is nil.
func Handler(next http.Handler, key KeyFunc, l Limiter) http.Handler {
	if l == nil {
		panic("ratelimit: Handler: nil Limiter")
	}
	if key == nil {
		key = RemoteAddr
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, retry := l.Allow(key(r))
		if !ok {
			refuse(w, http.StatusTooManyRequests, retry, "too many requests: rate limit exceeded")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ConnHandler holds a slot of l, for the request's key, for as long as
// next.ServeHTTP runs. (wssproxy's Proxy returns from ServeHTTP once a
// WebSocket is spliced: give it the limiter as Options.ConnLimit instead.)
// That covers a hijacked WebSocket connection when
// next blocks until the connection ends, as a proxy does. A request
// refused with [ErrTooManyForKey] gets 429 Too Many Requests, one
// refused with [ErrTooMany] 503 Service Unavailable, both with
// Retry-After: 5 and a short text body; any other error from Acquire
// gets 500. If key is nil, [RemoteAddr] is used. ConnHandler panics if
// l is nil.
func ConnHandler(next http.Handler, key KeyFunc, l ConnLimiter) http.Handler {
	if l == nil {
		panic("ratelimit: ConnHandler: nil ConnLimiter")
	}
	if key == nil {
		key = RemoteAddr
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := l.Acquire(key(r))
		switch {
		case err == nil:
			defer release()
			next.ServeHTTP(w, r)
		case errors.Is(err, ErrTooManyForKey):
			refuse(w, http.StatusTooManyRequests, connRetryAfter, "too many connections from your address")
		case errors.Is(err, ErrTooMany):
			refuse(w, http.StatusServiceUnavailable, connRetryAfter, "too many connections: server is full")
		default:
			http.Error(w, "internal error: connection limiter failed", http.StatusInternalServerError)
		}
	})
}

func refuse(w http.ResponseWriter, code int, retry time.Duration, msg string) {
	w.Header().Set("Retry-After", retryAfterSeconds(retry))
	http.Error(w, msg, code)
}

// retryAfterSeconds formats d as whole seconds for Retry-After, rounded
// up, at least 1 and at most a year.
func retryAfterSeconds(d time.Duration) string {
	s := math.Ceil(d.Seconds())
	s = min(max(s, 1), 365*24*3600)
	return strconv.FormatInt(int64(s), 10)
}
