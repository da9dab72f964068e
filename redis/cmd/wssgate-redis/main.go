// Command wssgate-redis is the wssgate operator binary (examples/basic)
// for several replicas behind one name: with -redis, handshake and
// request rates per client, connection caps and the ACME account and
// certificates are shared through Redis. The per-connection message
// limits (-msg-rate) stay per connection, as in examples/basic.
//
//	go run ./cmd/wssgate-redis -redis redis://10.0.0.5:6379/0 -domain rpc.example.com
//
// (from the redis module's directory). Everything else, every flag with
// its WSSGATE_ environment variable, the pages, SIGHUP and the systemd
// unit, is examples/basic's: this main only adds -redis through the
// operator's hooks. Without -redis it is examples/basic.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/wssgate/wssgate/internal/operator"
	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/redis/redisstore"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/time/rate"
)

func main() {
	r := &replica{}
	code := r.program().Main(context.Background(), os.Args[1:])
	r.close()
	os.Exit(code)
}

// replica holds the Redis store, opened on first use with the parsed
// -redis URL, and the shared limiters, made again only when their
// settings change on a reload.
type replica struct {
	url   string
	store *redisstore.Store

	reqKey  [2]float64
	connKey [2]int
	req     ratelimit.Limiter
	conns   ratelimit.ConnLimiter
}

func (r *replica) program() *operator.Program {
	return &operator.Program{
		Name:    "wssgate-redis",
		Summary: "wssgate-redis is the wssgate operator binary with limits, connection caps and ACME certificates shared by every replica through Redis (-redis).",
		Example: "go run ./cmd/wssgate-redis -redis redis://10.0.0.5:6379/0 -domain rpc.example.com -email you@example.com",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&r.url, "redis", "", "redis:// or rediss:// URL shared by the replicas (password from $"+redisstore.PasswordEnv+"); empty: limits per replica")
		},
		Limiters:  r.limiters,
		ACMECache: r.acmeCache,
	}
}

func (r *replica) open(c *operator.Config) (*redisstore.Store, error) {
	if r.store == nil {
		st, err := redisstore.Open(context.Background(), r.url, c.Logger)
		if err != nil {
			return nil, err
		}
		r.store = st
	}
	return r.store, nil
}

// limiters returns the shared limiters for c, or nil without -redis.
func (r *replica) limiters(c *operator.Config) (*operator.Limiters, error) {
	if r.url == "" {
		return nil, nil
	}
	st, err := r.open(c)
	if err != nil {
		return nil, err
	}
	var l operator.Limiters
	if c.Rate > 0 {
		if k := [2]float64{c.Rate, float64(c.Burst)}; r.req == nil || k != r.reqKey {
			r.req, r.reqKey = st.Limiter("requests", rate.Limit(c.Rate), max(c.Burst, 1)), k
		}
		l.Request = r.req
	}
	if c.MaxConnsPerClient > 0 || c.MaxConns > 0 {
		if k := [2]int{c.MaxConnsPerClient, c.MaxConns}; r.conns == nil || k != r.connKey {
			r.conns, r.connKey = st.Conns("conns", c.MaxConnsPerClient, c.MaxConns), k
		}
		l.Conn = r.conns
	}
	return &l, nil
}

// acmeCache shares the ACME account and certificates, mirrored to the
// -acme-cache directory so that a replica restarting while Redis is down
// still has its certificate.
func (r *replica) acmeCache(c *operator.Config) (autocert.Cache, error) {
	if r.url == "" {
		return autocert.DirCache(c.ACMECache), nil
	}
	st, err := r.open(c)
	if err != nil {
		return nil, err
	}
	return st.CertCache(0, autocert.DirCache(c.ACMECache)), nil
}

func (r *replica) close() {
	if r.store != nil {
		r.store.Close()
	}
}
