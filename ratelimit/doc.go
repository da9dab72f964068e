// Package ratelimit limits requests and connections per client.
//
// [Handler] refuses requests over a rate with 429 and Retry-After, using
// a [Limiter] such as [Buckets] (a token bucket per key, like nginx
// limit_req). [ConnHandler] caps concurrent connections per key and in
// total with a [ConnLimiter] such as [Conns] (like Apache mod_qos
// QS_SrvMaxConnPerIP). Both find a request's key with a [KeyFunc]:
// [RemoteAddr] by default, or a [Keyer] that believes X-Forwarded-For or
// Forwarded from trusted proxies only. A typical stack is
//
//	keys := (&ratelimit.Keyer{TrustedProxies: trusted}).Key
//	h := ratelimit.Handler(
//		ratelimit.ConnHandler(proxy, keys, &ratelimit.Conns{PerKey: 50, Total: 10000}),
//		keys, ratelimit.NewBuckets(2, 5))
//
// with the rate limit outside, so that it is checked first, cheaply, and
// every connection attempt spends a token.
//
// Nothing here starts a goroutine: idle keys are dropped lazily, during
// later calls, so no type needs a Close.
//
// # Security
//
// A key is only as good as the address it is made from. Forwarding
// headers are ignored unless the peer is in [Keyer.TrustedProxies], so a
// client that connects directly cannot choose its key by sending
// X-Forwarded-For (keying nginx's limit_req on $http_x_forwarded_for
// lets it). Trust only proxies that append to the one header named by
// [Keyer.Header].
//
// IPv6 clients are keyed by /64 by default, since one client usually
// owns a whole /64. A client with many addresses (a large IPv6 block, a
// botnet) still gets a bucket for each; stack a second Handler with a
// coarser Keyer (IPv6Prefix 48, IPv4Prefix 24) or rely on [Conns.Total].
// Under a flood of more than [Buckets.MaxKeys] distinct keys, the least
// recently used buckets are forgotten, and so refilled, to bound memory.
//
// # Misconfiguration
//
// Config structs have a Validate method. [Buckets] and [Keyer] methods
// panic on values it rejects, since they cannot return errors; call
// Validate when configuring. [Conns.Acquire] returns its error instead.
package ratelimit
