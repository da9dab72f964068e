// Package redisstore lets several wssgate replicas behind one name
// share their limits, connection caps and ACME certificates through
// Redis (or Valkey), so that every limit stays exact however many
// replicas run.
//
// It lives in a module of its own (github.com/wssgate/wssgate/redis),
// so that importers of the core module do not pull in go-redis.
//
// Entry points, all on one [Store] (a go-redis client plus the health
// state that decides when to fall back):
//
//   - [Limiter], a ratelimit.Limiter for wssproxy's RequestLimit
//     (handshakes and HTTP requests) and ClientMessageLimit: GCRA in one
//     Lua script on Redis's clock, one round trip per decision, refusals
//     remembered locally until their retry time.
//   - [Conns], a ratelimit.ConnLimiter for wssproxy's ConnLimit: per
//     client and total caps as leases in Redis sorted sets, renewed by a
//     heartbeat and expiring within a TTL when a replica dies.
//   - [CertCache], an autocert.Cache for certs.ACME: one account key,
//     one certificate per name, exactly one replica ordering at first
//     issuance and at renewal, challenges answerable by any replica.
//
// [Open] makes a Store from a redis:// or rediss:// URL, with the
// password from $WSSGATE_REDIS_PASSWORD.
//
// # What is shared and what is not
//
// Shared: handshake and request rates per client key, per-client
// message rates, connection counts per client and in total, the ACME
// account key, certificates and challenge tokens. Per replica: the
// per-connection message rate (Options.MessageRate), subscription caps,
// node health and the node pool, and everything while Redis is down.
//
// # Redis failures
//
// Redis failing never stops a replica. Every call has a timeout
// ([DefaultTimeout], 75 ms, for limiter calls). On the first failure a
// WARN is logged, [Store.Status] and [Store.WritePrometheus] report it,
// and each Limiter and Conns follows its [Mode]: by default the
// replica's own local limiter decides, so each replica enforces its own
// copy (or its share) of the limit. One call per RetryInterval tries
// Redis again; the first success restores shared enforcement, with no
// restart.
package redisstore
