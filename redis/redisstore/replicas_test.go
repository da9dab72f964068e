package redisstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
	"github.com/wssgate/wssgate/wssproxy"
)

// Three replicas share one handshake limit of 2 r/s with bursts of 5:
// a client spreading handshakes round robin over them gets at most
// 5 + 2t in t seconds, every decision the one a single token bucket
// would make. The limiters run on one injected clock, so the count is
// exact.
func TestReplicasShareHandshakeRate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	node := startNode(t)
	clock := newFakeClock()
	var urls []string
	for range 3 {
		st, _ := newStore(t, srv.Addr)
		l := st.Limiter("handshakes", 2, 5)
		redisstore.SetLimiterClock(l, clock.Now)
		urls = append(urls, startReplica(t, node.URL(), wssproxy.Options{RequestLimit: l}))
	}
	oracle := rate.NewLimiter(2, 5)
	start := clock.Now()
	accepted, attempts := 0, 0
	const steps, perStep, step = 31, 3, 100 * time.Millisecond
	for s := range steps {
		for range perStep {
			url := urls[attempts%len(urls)]
			attempts++
			code, c := dial(t, url, "203.0.113.1")
			want := oracle.AllowN(clock.Now(), 1)
			if got := code == http.StatusSwitchingProtocols; got != want {
				t.Fatalf("t=%v attempt %d on replica %d: %s, want accepted=%v", clock.Now().Sub(start), attempts, (attempts-1)%3, statusText(code), want)
			}
			if c != nil {
				accepted++
				c.CloseNow()
			} else if code != http.StatusTooManyRequests {
				t.Fatalf("refused with %s, want 429", statusText(code))
			}
		}
		elapsed := clock.Now().Sub(start)
		if limit := 5 + int(2*elapsed.Seconds()+1e-9); accepted > limit {
			t.Fatalf("t=%v: %d accepted, over 5+2t = %d", elapsed, accepted, limit)
		}
		if s < steps-1 {
			clock.Advance(step)
		}
	}
	elapsed := clock.Now().Sub(start)
	want := 5 + int(2*elapsed.Seconds()+1e-9)
	t.Logf("round robin over 3 replicas: %d of %d handshakes accepted in t=%v; 5+2t = %d", accepted, attempts, elapsed, want)
	if accepted != want {
		t.Errorf("accepted %d, want exactly 5+2t = %d", accepted, want)
	}
}

// Per-client and total connection caps hold across replicas.
func TestReplicasShareConnCaps(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	node := startNode(t)
	var urls []string
	var conns []*redisstore.Conns
	for range 3 {
		st, _ := newStore(t, srv.Addr)
		c := st.Conns("conns", 2, 4)
		t.Cleanup(func() { st.Close() })
		conns = append(conns, c)
		urls = append(urls, startReplica(t, node.URL(), wssproxy.Options{ConnLimit: c}))
	}
	i := 0
	next := func() string { i++; return urls[i%3] }
	expect := func(client string, want int) *websocket.Conn {
		t.Helper()
		url := next()
		code, c := dial(t, url, client)
		if code != want {
			t.Fatalf("%s via %s: %s, want %s", client, url, statusText(code), statusText(want))
		}
		if c != nil {
			call(t, c)
		}
		return c
	}
	a1 := expect("198.51.100.1", 101)
	expect("198.51.100.1", 101)
	expect("198.51.100.1", 429) // per client: 2 across replicas
	expect("198.51.100.2", 101)
	expect("198.51.100.2", 101)
	expect("198.51.100.3", 503) // total: 4 across replicas
	ctx := context.Background()
	if n, err := conns[0].InUse(ctx); err != nil || n != 4 {
		t.Fatalf("InUse = %d, %v; want 4", n, err)
	}
	a1.CloseNow()
	waitFor(t, "the closed connection's lease to be released", func() bool {
		n, err := conns[1].Count(ctx, "198.51.100.1")
		return err == nil && n == 1
	})
	expect("198.51.100.3", 101)
	expect("198.51.100.1", 503) // a slot of its own, but the total is full again
}

// Redis stopped mid-test: handshakes keep being served under each
// replica's local limit, with a WARN and the fallback count; when Redis
// is back, shared limits apply again without a restart.
func TestReplicasSurviveRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	node := startNode(t)
	var urls []string
	var stores []*redisstore.Store
	var logs []*logBuffer
	for range 3 {
		st, log := newStore(t, srv.Addr)
		st.RetryInterval = time.Hour // recovery is driven by Check below
		// A shared burst of 3, no refill during the test; each replica
		// alone allows 2 (its share) while Redis is down.
		l := &redisstore.Limiter{Store: st, Name: "handshakes", Rate: 0.001, Burst: 3, Local: ratelimit.NewBuckets(0.001, 2)}
		stores, logs = append(stores, st), append(logs, log)
		urls = append(urls, startReplica(t, node.URL(), wssproxy.Options{RequestLimit: l}))
	}
	round := func(client string, n int) (accepted int) {
		for i := range n {
			code, c := dial(t, urls[i%3], client)
			if c != nil {
				accepted++
				c.CloseNow()
			} else if code != http.StatusTooManyRequests {
				t.Fatalf("%s: %s, want 101 or 429", client, statusText(code))
			}
		}
		return accepted
	}
	if got := round("192.0.2.1", 9); got != 3 {
		t.Fatalf("with Redis: %d of 9 accepted, want the shared burst 3", got)
	}

	srv.Stop()
	if got := round("192.0.2.2", 9); got != 6 {
		t.Errorf("Redis down: %d of 9 accepted, want 3 replicas x local burst 2 = 6", got)
	}
	for i, st := range stores {
		s := st.Status()
		if s.Up || s.Fallbacks["handshakes"] != 3 {
			t.Errorf("replica %d status while down = %+v, want down with 3 fallbacks", i, s)
		}
		if n := logs[i].Count(`level=WARN msg="redis: unreachable`); n != 1 {
			t.Errorf("replica %d logged the WARN %d times, want once:\n%s", i, n, logs[i])
		}
	}
	prom := new(logBuffer)
	stores[0].WritePrometheus(prom)
	for _, want := range []string{"wssgate_redis_up 0\n", `wssgate_redis_fallbacks_total{store="handshakes"} 3` + "\n"} {
		if n := prom.Count(want); n != 1 {
			t.Errorf("metrics lack %q:\n%s", want, prom)
		}
	}

	srv.Restart(t)
	for i, st := range stores {
		if err := st.Check(context.Background()); err != nil {
			t.Fatalf("replica %d: Check after restart: %v", i, err)
		}
		if !st.Status().Up || logs[i].Count(`msg="redis: reachable again`) != 1 {
			t.Errorf("replica %d not restored: %+v\n%s", i, st.Status(), logs[i])
		}
	}
	if got := round("192.0.2.3", 9); got != 3 {
		t.Errorf("Redis back: %d of 9 accepted, want the shared burst 3 again", got)
	}
}
