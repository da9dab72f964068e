package ratelimit

import (
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime 1x ./ratelimit  (quick)
//	go test -run '^$' -bench BucketsMillionKeys -benchtime 1x ./ratelimit

func BenchmarkBucketsAllow(b *testing.B) {
	bk := NewBuckets(1e9, 1e9) // never refuses, so each op is a full Allow
	b.ReportAllocs()
	for b.Loop() {
		bk.Allow("203.0.113.7")
	}
}

// BenchmarkBucketsAllowParallel shows that goroutines working on
// different keys do not serialise on one lock.
// Compare shards=1 (one mutex) with the default at -cpu 1,2.
func BenchmarkBucketsAllowParallel(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
	}
	for _, n := range []int{1, 64} {
		b.Run("shards="+strconv.Itoa(n), func(b *testing.B) {
			bk := &Buckets{Rate: 1e9, Burst: 1e9, nshards: n}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					bk.Allow(keys[i%len(keys)])
					i += 7
				}
			})
		})
	}
}

// BenchmarkBucketsDistinctKeys gives every op a key never seen before,
// the worst case: each op inserts a key and evicts one.
func BenchmarkBucketsDistinctKeys(b *testing.B) {
	bk := &Buckets{Rate: 2, Burst: 5}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bk.AllowAt(strconv.Itoa(i), now)
		i++
	}
	b.ReportMetric(float64(bk.Len()), "keys")
}

// BenchmarkBucketsMillionKeys feeds 1,000,000 distinct keys to one
// Buckets, all at one instant so that none is idle, and reports the
// keys kept and the live heap they take: memory stays flat at MaxKeys.
func BenchmarkBucketsMillionKeys(b *testing.B) {
	for _, maxKeys := range []int{0, 1 << 20} {
		b.Run("MaxKeys="+strconv.Itoa(maxKeys), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			var keys int
			var heap uint64
			for b.Loop() {
				base := heapInUse()
				bk := &Buckets{Rate: 2, Burst: 5, MaxKeys: maxKeys}
				for i := range 1_000_000 {
					bk.AllowAt(strconv.Itoa(i), now)
				}
				keys = bk.Len()
				heap = heapInUse() - base
				runtime.KeepAlive(bk)
			}
			b.ReportMetric(float64(keys), "keys")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
			b.ReportMetric(float64(heap)/float64(keys), "B/key")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkConnsAcquireRelease(b *testing.B) {
	c := &Conns{PerKey: 1 << 30, Total: 1 << 30}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rel, err := c.Acquire(strconv.Itoa(i % 1024))
			if err != nil {
				b.Error(err)
				return
			}
			rel()
			i++
		}
	})
}

func BenchmarkKeyerKey(b *testing.B) {
	k := &Keyer{TrustedProxies: mustTrusted(b, "10.0.0.0/8")}
	for _, bc := range []struct {
		name, remote, xff string
	}{
		{"untrusted", "203.0.113.7:1234", "1.2.3.4"},
		{"trusted/XFF", "10.0.0.1:1234", "198.51.100.9, 10.0.0.2"},
		{"IPv6", "[2001:db8:1:2::9]:443", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRequest(bc.remote, http.Header{"X-Forwarded-For": {bc.xff}})
			b.ReportAllocs()
			for b.Loop() {
				k.Key(r)
			}
		})
	}
}
