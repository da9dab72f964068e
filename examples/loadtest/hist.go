package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the style of HdrHistogram:
// values below 256 ns are exact, and above that each power of two is split
// into 128 buckets, so a reported percentile is within 0.4% of the true
// value. It is fixed-size (about 60 KB), never allocates when recording,
// and keeps the exact maximum. The zero value is ready to use. A hist is
// not safe for concurrent use: each worker keeps its own and they merge.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds
	max    int64
}

const (
	histSubBits = 7
	histHalf    = 1 << histSubBits
	// 64-bit values: exponents 1..56 above the exact range.
	histBuckets = (64 - histSubBits + 1) * histHalf
)

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 2*histHalf {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - (histSubBits + 1)
	m := int(v >> e)
	return (e+1)*histHalf + m - histHalf
}

// histValue returns the midpoint of bucket i.
func histValue(i int) int64 {
	if i < 2*histHalf {
		return int64(i)
	}
	e := i/histHalf - 1
	m := int64(i%histHalf + histHalf)
	return m<<e + (int64(1)<<e)/2
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value at or below which a fraction q of the
// samples fall, never more than the maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Latency summarizes a hist, in microseconds.
type Latency struct {
	Samples uint64  `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
	Mean    float64 `json:"mean"`
}

func (h *hist) summary() *Latency {
	if h.n == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return &Latency{
		Samples: h.n,
		P50:     us(h.quantile(0.50)),
		P99:     us(h.quantile(0.99)),
		P999:    us(h.quantile(0.999)),
		Max:     us(time.Duration(h.max)),
		Mean:    h.sum / float64(h.n) / 1e3,
	}
}
