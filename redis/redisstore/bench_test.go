package redisstore_test

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wssgate/wssgate/ratelimit"
	"github.com/wssgate/wssgate/redis/internal/redistest"
	"github.com/wssgate/wssgate/redis/redisstore"
	"github.com/wssgate/wssgate/wssproxy"
)

// BenchmarkHandshakeLatency measures whole WebSocket handshakes through
// a replica whose RequestLimit is the shared Redis limiter and through
// one whose limit is local buckets, alternating in the same run, and
// reports p50 and p99 of each and their ratios (redis/local). Limits
// are high enough never to refuse, so every Redis handshake pays its
// round trip. BenchmarkAllowLatency does the same for the Allow call
// alone.
func BenchmarkHandshakeLatency(b *testing.B) {
	srv := redistest.Start(b)
	node := startNodeB(b)
	st := &redisstore.Store{Client: srv.Client(b), Logger: discard}
	shared := startReplica(b, node.URL(), wssproxy.Options{RequestLimit: st.Limiter("bench", 1e6, 1e6)})
	local := startReplica(b, node.URL(), wssproxy.Options{RequestLimit: ratelimit.NewBuckets(1e6, 1e6)})
	var tl, tr []time.Duration
	i := 0
	for b.Loop() {
		i++
		client := "203.0.113." + strconv.Itoa(i%250+1)
		for _, r := range []struct {
			url string
			d   *[]time.Duration
		}{{local, &tl}, {shared, &tr}} {
			start := time.Now()
			code, c := dial(b, r.url, client)
			*r.d = append(*r.d, time.Since(start))
			if code != http.StatusSwitchingProtocols {
				b.Fatalf("handshake: %s", statusText(code))
			}
			c.CloseNow()
		}
	}
	report(b, tl, tr)
	// A Redis call over the 75 ms timeout (a loaded machine) falls back
	// to local buckets; count them, as those handshakes paid the timeout.
	b.ReportMetric(float64(st.Status().Fallbacks["bench"]), "fallbacks")
}

func BenchmarkAllowLatency(b *testing.B) {
	srv := redistest.Start(b)
	st := &redisstore.Store{Client: srv.Client(b), Logger: discard}
	shared := st.Limiter("bench", 1e6, 1e6)
	local := ratelimit.NewBuckets(1e6, 1e6)
	var tl, tr []time.Duration
	i := 0
	for b.Loop() {
		i++
		key := "203.0.113." + strconv.Itoa(i%250+1)
		start := time.Now()
		local.Allow(key)
		mid := time.Now()
		if ok, _ := shared.Allow(key); !ok {
			b.Fatal("refused")
		}
		tl, tr = append(tl, mid.Sub(start)), append(tr, time.Since(mid))
	}
	report(b, tl, tr)
	b.ReportMetric(float64(st.Status().Fallbacks["bench"]), "fallbacks")
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func report(b *testing.B, local, shared []time.Duration) {
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Nanoseconds()) / 1e3
	}
	l50, l99, r50, r99 := pct(local, .50), pct(local, .99), pct(shared, .50), pct(shared, .99)
	b.ReportMetric(l50, "local-p50-µs")
	b.ReportMetric(l99, "local-p99-µs")
	b.ReportMetric(r50, "redis-p50-µs")
	b.ReportMetric(r99, "redis-p99-µs")
	b.ReportMetric(r50/max(l50, 1), "p50-ratio")
	b.ReportMetric(r99/max(l99, 1), "p99-ratio")
	b.ReportMetric(r50-l50, "added-p50-µs")
	b.ReportMetric(r99-l99, "added-p99-µs")
}
