package redisstore_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
)

// While Redis is down, one call per RetryInterval tries it again, so
// shared limits come back on their own once it answers.
func TestStoreRecoversWithoutRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st, logs := newStore(t, srv.Addr)
	l := st.Limiter("h", 0.001, 1)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("first event refused")
	}
	srv.Stop()
	if ok, _ := l.Allow("b"); !ok { // local bucket: a fresh key
		t.Fatal("local fallback refused a fresh key")
	}
	if st.Status().Up {
		t.Fatal("store still up after a failed call")
	}
	srv.Restart(t) // empty: "a" may burst again, on Redis
	waitFor(t, "a call to find Redis back", func() bool {
		l.Allow("probe")
		return st.Status().Up
	})
	if !strings.Contains(logs.String(), `msg="redis: reachable again; shared limits restored"`) {
		t.Errorf("no INFO on recovery:\n%s", logs)
	}
	// Shared again: a second limiter on another store sees this one's events.
	other, _ := newStore(t, srv.Addr)
	l2 := other.Limiter("h", 0.001, 1)
	if ok, _ := l.Allow("c"); !ok {
		t.Fatal("first event for c refused")
	}
	if ok, _ := l2.Allow("c"); ok {
		t.Error("another replica allowed c's second event: limits not shared after recovery")
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	t.Run("bad URL", func(t *testing.T) {
		_, err := redisstore.Open(ctx, "http://localhost", nil)
		if err == nil || !strings.Contains(err.Error(), "redisstore: redis URL") {
			t.Errorf("Open(http://) err = %v", err)
		}
	})
	t.Run("password from the environment", func(t *testing.T) {
		rdb := srv.Client(t)
		if err := rdb.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Do(ctx, "AUTH", "s3cret"); rdb.ConfigSet(ctx, "requirepass", "") })
		os.Setenv(redisstore.PasswordEnv, "s3cret") // not t.Setenv: the test is parallel
		defer os.Unsetenv(redisstore.PasswordEnv)
		st, err := redisstore.Open(ctx, "redis://"+srv.Addr+"/0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if !st.Status().Up {
			t.Errorf("store down with the password from %s: %+v", redisstore.PasswordEnv, st.Status())
		}
		os.Setenv(redisstore.PasswordEnv, "wrong")
		st2, err := redisstore.Open(ctx, "redis://"+srv.Addr+"/0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close()
		if s := st2.Status(); s.Up || !strings.Contains(s.LastError, "WRONGPASS") {
			t.Errorf("store with a wrong password: %+v, want down with WRONGPASS", s)
		}
	})
}

func TestTimeoutBoundsCalls(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st, _ := newStore(t, srv.Addr)
	st.Timeout = 50 * time.Millisecond
	l := st.Limiter("h", 1, 1)
	if ok, _ := l.Allow("warm"); !ok || !st.Status().Up {
		t.Fatal("no answer from Redis before the pause")
	}
	// Redis stops answering every client for 3 s.
	if err := srv.Client(t).Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, _ := l.Allow("x")
	if d := time.Since(start); d > time.Second {
		t.Errorf("Allow took %v against a paused Redis, want about Timeout 50ms", d)
	}
	if !ok || st.Status().Up {
		t.Errorf("Allow = %v, store up = %v; want the local fallback's yes and the store down", ok, st.Status().Up)
	}
}
