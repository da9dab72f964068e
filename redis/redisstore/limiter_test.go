package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

func TestLimiterMatchesTokenBucket(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	clock := newFakeClock()
	// Two replicas' limiters, each on its own client, and the oracle: a
	// token bucket of the same size fed the same times.
	var ls [2]*redisstore.Limiter
	for i := range ls {
		st, _ := newStore(t, srv.Addr)
		ls[i] = st.Limiter("test", 2, 5)
		redisstore.SetLimiterClock(ls[i], clock.Now)
	}
	oracle := rate.NewLimiter(2, 5)
	for step := range 60 {
		for i := range 3 {
			l := ls[(step+i)%2]
			want := oracle.AllowN(clock.Now(), 1)
			got, retry := l.Allow("client")
			if got != want {
				t.Fatalf("step %d call %d: Allow = %v, token bucket says %v", step, i, got, want)
			}
			if !got && (retry <= 0 || retry > 500*time.Millisecond) {
				t.Fatalf("step %d: retryAfter = %v, want in (0, 500ms]", step, retry)
			}
		}
		clock.Advance(70 * time.Millisecond)
	}
}

func TestLimiterRemembersDenials(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st, _ := newStore(t, srv.Addr)
	var cc cmdCounter
	st.Client.AddHook(&cc)
	clock := newFakeClock()
	l := st.Limiter("deny", 2, 1)
	redisstore.SetLimiterClock(l, clock.Now)

	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("first event refused")
	}
	ok, retry := l.Allow("k")
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("second event: ok %v retry %v, want refused for 500ms", ok, retry)
	}
	before := cc.scripts()
	clock.Advance(499 * time.Millisecond)
	for range 100 {
		if ok, retry := l.Allow("k"); ok || retry != time.Millisecond {
			t.Fatalf("during the refusal: ok %v retry %v, want refused for 1ms", ok, retry)
		}
	}
	if got := cc.scripts() - before; got != 0 {
		t.Errorf("Redis calls while a refusal was remembered = %d, want 0", got)
	}
	clock.Advance(time.Millisecond)
	if ok, _ := l.Allow("k"); !ok {
		t.Error("event at the retry time refused")
	}
	if got := cc.scripts() - before; got != 1 {
		t.Errorf("Redis calls at the retry time = %d, want 1", got)
	}
}

func TestLimiterDenialMemoryBounded(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st, _ := newStore(t, srv.Addr)
	l := &redisstore.Limiter{Store: st, Rate: 0.001, Burst: 1, MaxDenials: 32}
	for i := range 200 {
		key := "k" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		l.Allow(key)
		l.Allow(key) // refused, remembered
	}
	if n := redisstore.DenialsLen(l); n > 32 {
		t.Errorf("remembered refusals = %d, want at most MaxDenials 32", n)
	}
}

func TestLimiterFallback(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, tc := range []struct {
		mode redisstore.Mode
		want []bool
	}{
		{redisstore.FallbackLocal, []bool{true, true, false}},
		{redisstore.FailOpen, []bool{true, true, true}},
		{redisstore.FailClosed, []bool{false, false, false}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			st, logs := newStore(t, srv.Addr)
			st.Client.Close() // every call fails, as if Redis were gone
			l := &redisstore.Limiter{Store: st, Name: "h", Rate: 0.001, Burst: 5, Mode: tc.mode,
				Local: ratelimit.NewBuckets(0.001, 2)}
			for i, want := range tc.want {
				if ok, _ := l.Allow("k"); ok != want {
					t.Errorf("call %d: Allow = %v, want %v", i, ok, want)
				}
			}
			s := st.Status()
			if s.Up || s.Fallbacks["h"] != 3 || s.LastError == "" {
				t.Errorf("Status = %+v, want down with 3 fallbacks for h and the error", s)
			}
			if n := logs.Count("level=WARN msg=\"redis: unreachable"); n != 1 {
				t.Errorf("WARN logged %d times, want once:\n%s", n, logs)
			}
		})
	}
}

func TestLimiterValidate(t *testing.T) {
	t.Parallel()
	l := &redisstore.Limiter{Rate: -1, Burst: -1, MaxDenials: -1, Mode: 7}
	err := l.Validate()
	for _, want := range []string{"Limiter.Store is nil or has no Client", "Limiter.Rate -1", "Limiter.Burst -1", "Limiter.MaxDenials -1", "Limiter.Mode Mode(7)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %q", err, want)
		}
	}
}
