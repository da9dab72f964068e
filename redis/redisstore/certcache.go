package redisstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"
)

// Defaults applied to zero fields of [CertCache].
const (
	// DefaultLockTTL is how long a replica may hold a name's ordering
	// lock without storing a certificate: autocert gives up on an order
	// after 5 minutes.
	DefaultLockTTL = 5 * time.Minute
	// DefaultPollInterval is how often a replica waiting for another's
	// order looks for the stored certificate.
	DefaultPollInterval = time.Second
	// DefaultCacheTimeout bounds each Redis call of a CertCache.
	DefaultCacheTimeout = 2 * time.Second
)

// accountKeyName is where autocert keeps its ACME account key.
const accountKeyName = "acme_account+key"

// unlockScript deletes a lock only if this replica holds it.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// lockScript takes a lock, or extends it if this replica holds it.
// Returns 1 if held by this replica afterwards.
var lockScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// CertCache is an [autocert.Cache] on Redis that lets several replicas
// share one ACME account and one certificate per name, with exactly one
// replica ordering at first issuance and at renewal. Give every
// replica's certs.ACME (or autocert.Manager) a CertCache with the same
// Store and RenewBefore.
//
// autocert has no cross-process lock (golang/go#36818), so the lock is
// taken where autocert decides to order: in Get. A Get for a
// certificate that is missing, or that autocert would renew (within
// RenewBefore of expiry), takes the name's lock in Redis. The replica
// that gets it is told the certificate is missing and orders; its Put
// of the new certificate releases the lock. The others wait (polling
// every PollInterval) until the new certificate is stored or the lock
// is free, and return the stored certificate, so autocert uses it and
// orders nothing. The account key is made once, by whichever replica
// asks first (SET NX), and every replica reads that one. Challenge
// tokens (HTTP-01 values and TLS-ALPN-01 certificates) are stored like
// any entry, so any replica answers the CA.
//
// While Redis is unreachable, Get and Put use Mirror if set (a local
// autocert.DirCache, say), and a missing certificate is reported as
// missing, so that replica orders on its own, as a lone replica would.
//
// # Caveats
//
// autocert reads the cache while holding its state lock, so a replica
// waiting for another's order serves no new name until it is stored
// (names it already holds are served from memory). A waiting replica
// whose context ends (autocert allows 5 minutes for a first order, 10
// for a renewal) before the holder stores anything orders on its own.
// The lock is a single Redis key (SET NX PX), not Redlock: it is as
// available as the Redis it lives in.
//
// The zero CertCache is not usable: Store is required. Fields must not
// be changed after first use.
type CertCache struct {
	// Store is the Redis connection and health state. Required.
	Store *Store

	// Name distinguishes this cache's keys from other caches'. If
	// empty, "acme".
	Name string

	// RenewBefore must equal the RenewBefore of the certs.ACME or
	// autocert.Manager using this cache: it is when autocert orders a
	// renewal. If zero, autocert's default (a third of the lifetime,
	// at most 30 days).
	RenewBefore time.Duration

	// LockTTL is how long an ordering lock lasts if its holder never
	// stores a certificate (it failed or died). If zero, DefaultLockTTL.
	LockTTL time.Duration

	// PollInterval is how often a waiting replica looks for the stored
	// certificate. If zero, DefaultPollInterval.
	PollInterval time.Duration

	// Timeout bounds each Redis call. If zero, DefaultCacheTimeout.
	Timeout time.Duration

	// Mirror, if set, keeps a local copy of every entry and serves Gets
	// while Redis is unreachable. If nil, none.
	Mirror autocert.Cache

	once  sync.Once
	token string // identifies this replica's locks
}

var _ autocert.Cache = (*CertCache)(nil)

func (c *CertCache) init() {
	c.once.Do(func() {
		var b [12]byte
		rand.Read(b[:])
		c.token = hex.EncodeToString(b[:])
	})
}

func (c *CertCache) name() string {
	if c.Name == "" {
		return "acme"
	}
	return c.Name
}

func (c *CertCache) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCacheTimeout
}

func (c *CertCache) lockTTL() time.Duration {
	if c.LockTTL > 0 {
		return c.LockTTL
	}
	return DefaultLockTTL
}

func (c *CertCache) poll() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return DefaultPollInterval
}

func (c *CertCache) dataKey(key string) string { return c.Store.key(c.name(), "data", key) }
func (c *CertCache) lockKey(key string) string { return c.Store.key(c.name(), "lock", key) }

// isCertKey reports whether an autocert cache key names a certificate
// (not a challenge token or the account key).
func isCertKey(key string) bool {
	return !strings.HasSuffix(key, "+token") && !strings.HasSuffix(key, "+http-01") &&
		key != accountKeyName && key != "acme_account.key"
}

// Get returns the entry for key. For a certificate that must be
// ordered, it returns autocert.ErrCacheMiss only to the replica that
// holds the name's lock; see [CertCache].
func (c *CertCache) Get(ctx context.Context, key string) ([]byte, error) {
	c.init()
	data, err := c.get(ctx, key)
	switch {
	case err != nil && !errors.Is(err, autocert.ErrCacheMiss):
		return c.mirrorGet(ctx, key)
	case key == accountKeyName && err != nil:
		return c.accountKey(ctx)
	case !isCertKey(key):
		return data, err
	}
	waited := false
	for {
		if err == nil && !c.due(data) {
			if waited {
				c.Store.logger().Info("acme: using the certificate another replica stored", "name", key)
			}
			return data, nil
		}
		held, lerr := c.lock(ctx, key)
		if lerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Redis is gone: behave as a lone replica.
			return c.mirrorGet(ctx, key)
		}
		if held {
			// Look again: the holder before us may have stored it.
			if data, err = c.get(ctx, key); err == nil && !c.due(data) {
				c.unlock(key)
				return data, nil
			}
			c.Store.logger().Info("acme: this replica orders the certificate; the others wait for it", "name", key)
			return nil, autocert.ErrCacheMiss
		}
		waited = true
		t := time.NewTimer(c.poll())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		data, err = c.get(ctx, key)
		if err != nil && !errors.Is(err, autocert.ErrCacheMiss) {
			return c.mirrorGet(ctx, key)
		}
	}
}

// Put stores data under key. Storing a certificate releases the name's
// ordering lock if this replica holds it. Challenge tokens expire after
// a day in case autocert never deletes them.
func (c *CertCache) Put(ctx context.Context, key string, data []byte) error {
	c.init()
	if c.Mirror != nil {
		c.Mirror.Put(ctx, key, data)
	}
	var ttl time.Duration
	if !isCertKey(key) && key != accountKeyName {
		ttl = 24 * time.Hour
	}
	err := c.do(ctx, func(ctx context.Context) error {
		return c.Store.Client.Set(ctx, c.dataKey(key), data, ttl).Err()
	})
	if err != nil {
		return fmt.Errorf("redisstore: storing %q: %w", key, err)
	}
	if isCertKey(key) {
		c.unlock(key)
	}
	return nil
}

// Delete removes key's entry.
func (c *CertCache) Delete(ctx context.Context, key string) error {
	c.init()
	if c.Mirror != nil {
		c.Mirror.Delete(ctx, key)
	}
	err := c.do(ctx, func(ctx context.Context) error {
		return c.Store.Client.Del(ctx, c.dataKey(key)).Err()
	})
	if err != nil {
		return fmt.Errorf("redisstore: deleting %q: %w", key, err)
	}
	return nil
}

// do runs fn with the cache's timeout, within ctx, recording Redis's
// health. Unlike limiter calls it always tries Redis: these calls are
// rare and not on a handshake's path.
func (c *CertCache) do(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	err := fn(cctx)
	if ctx.Err() == nil { // the caller giving up says nothing about Redis
		c.Store.observe(err)
	}
	return err
}

func (c *CertCache) get(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		data, err = c.Store.Client.Get(ctx, c.dataKey(key)).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

func (c *CertCache) mirrorGet(ctx context.Context, key string) ([]byte, error) {
	c.Store.countFallback(c.name())
	if c.Mirror == nil {
		return nil, autocert.ErrCacheMiss
	}
	return c.Mirror.Get(ctx, key)
}

// lock takes (or extends) key's ordering lock; held reports whether this
// replica holds it.
func (c *CertCache) lock(ctx context.Context, key string) (held bool, err error) {
	err = c.do(ctx, func(ctx context.Context) error {
		n, err := lockScript.Run(ctx, c.Store.Client, []string{c.lockKey(key)}, c.token, c.lockTTL().Milliseconds()).Int()
		held = n == 1
		return err
	})
	return held, err
}

func (c *CertCache) unlock(key string) {
	c.do(context.Background(), func(ctx context.Context) error {
		return unlockScript.Run(ctx, c.Store.Client, []string{c.lockKey(key)}, c.token).Err()
	})
}

// accountKey stores a new P-256 account key unless another replica
// stored one first, and returns the stored one.
func (c *CertCache) accountKey(ctx context.Context) ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	var data []byte
	err = c.do(ctx, func(ctx context.Context) error {
		if err := c.Store.Client.SetNX(ctx, c.dataKey(accountKeyName), pemKey, 0).Err(); err != nil {
			return err
		}
		var err error
		data, err = c.Store.Client.Get(ctx, c.dataKey(accountKeyName)).Bytes()
		return err
	})
	if err != nil {
		return c.mirrorGet(ctx, accountKeyName)
	}
	if c.Mirror != nil {
		c.Mirror.Put(ctx, accountKeyName, data)
	}
	return data, nil
}

// due reports whether autocert would order a certificate in place of
// the stored entry: it is unreadable, expired, or within its renewal
// window (RenewBefore, or a third of its lifetime, at most 30 days,
// before expiry, as autocert computes it).
func (c *CertCache) due(data []byte) bool {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return true
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return true
		}
		threshold := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
		if c.RenewBefore > 0 {
			threshold = min(c.RenewBefore, 30*24*time.Hour)
		}
		return !time.Now().Before(leaf.NotAfter.Add(-threshold))
	}
}
