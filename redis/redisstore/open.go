package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/time/rate"
)

// PasswordEnv names the environment variable [Open] reads the Redis
// password from when the URL carries none, so that it stays out of
// command lines and process listings.
const PasswordEnv = "WSSGATE_REDIS_PASSWORD"

// Open returns a Store on a new client for rawURL: "redis://host:6379/0",
// "rediss://host:6380/0" (TLS) or "unix:///run/redis.sock?db=0", as
// redis.ParseURL reads them. If the URL has no password, $WSSGATE_REDIS_PASSWORD
// is used when set. The client's dial, read and write timeouts are the
// store's Timeout (DefaultTimeout), so no call outlasts it.
//
// A bad URL is an error. An unreachable Redis is not: Open pings it
// once with ctx, and if that fails the store starts down (WARN logged)
// and falls back until Redis answers. log may be nil (slog.Default()).
// Close the store when done; that closes the client.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*Store, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: redis URL: %w", err)
	}
	if opt.Password == "" {
		opt.Password = os.Getenv(PasswordEnv)
	}
	opt.DialTimeout = DefaultTimeout * 4
	opt.ReadTimeout = DefaultCacheTimeout
	opt.WriteTimeout = DefaultCacheTimeout
	opt.ContextTimeoutEnabled = true // each call's context bounds it
	opt.MaxRetries = -1              // a retry would double the time a handshake waits
	s := &Store{Client: redis.NewClient(opt), Logger: log, owned: true}
	s.Check(ctx)
	return s, nil
}

// Limiter returns a shared rate limiter named name allowing each key r
// events per second with bursts of burst, falling back to local
// buckets of the same size. See [Limiter] for the fields.
func (s *Store) Limiter(name string, r rate.Limit, burst int) *Limiter {
	return &Limiter{Store: s, Name: name, Rate: r, Burst: burst}
}

// Conns returns shared connection caps named name: perKey per client
// key and total in all, across replicas (0 = no cap), with
// DefaultLeaseTTL. [Store.Close] closes them. See [Conns].
func (s *Store) Conns(name string, perKey, total int) *Conns {
	c := &Conns{Store: s, Name: name, PerKey: perKey, Total: total}
	s.onClose(c.Close)
	return c
}

// CertCache returns a shared ACME cache for a certs.ACME whose
// RenewBefore is renewBefore, mirrored to mirror if not nil. See
// [CertCache].
func (s *Store) CertCache(renewBefore time.Duration, mirror autocert.Cache) *CertCache {
	return &CertCache{Store: s, RenewBefore: renewBefore, Mirror: mirror}
}
