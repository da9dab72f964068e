package operator

import (
	"maps"
	"sync"
	"time"

	"github.com/wssgate/wssgate/metrics"
)

// History sampling for the dashboard's charts: one sample per
// sampleInterval, the last historyLen kept (6 minutes).
const (
	sampleInterval = 5 * time.Second
	historyLen     = 72
)

// Point is one dashboard chart sample: the open connections at T, and
// the handshakes accepted and refusals by reason since the previous point.
type Point struct {
	T          time.Time        `json:"t"`
	Open       int64            `json:"open"`
	Handshakes int64            `json:"handshakes"`
	Refusals   map[string]int64 `json:"refusals"`
}

// history samples the counters in a goroutine it owns until stop.
type history struct {
	metrics *metrics.Counters
	conns   func() int

	mu       sync.Mutex
	points   []Point
	lastOK   int64
	lastRef  map[string]int64
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newHistory(m *metrics.Counters, conns func() int) *history {
	h := &history{metrics: m, conns: conns, lastRef: map[string]int64{}, done: make(chan struct{})}
	h.sample(time.Now())
	h.wg.Go(func() {
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				h.sample(now)
			case <-h.done:
				return
			}
		}
	})
	return h
}

func (h *history) stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

// totals returns the accepted handshakes and refusals by reason so far.
func totals(s metrics.Snapshot) (ok int64, refusals map[string]int64) {
	for _, byOutcome := range s.Handshakes {
		ok += byOutcome["ok"]
	}
	return ok, maps.Clone(s.Refusals)
}

func (h *history) sample(now time.Time) {
	ok, ref := totals(h.metrics.Snapshot())
	open := int64(h.conns())
	h.mu.Lock()
	defer h.mu.Unlock()
	p := Point{T: now, Open: open, Handshakes: ok - h.lastOK, Refusals: map[string]int64{}}
	for k, v := range ref {
		if d := v - h.lastRef[k]; d > 0 {
			p.Refusals[k] = d
		}
	}
	h.lastOK, h.lastRef = ok, ref
	if len(h.points) == 0 { // the first sample has no interval
		p.Handshakes, p.Refusals = 0, map[string]int64{}
	}
	h.points = append(h.points, p)
	if len(h.points) > historyLen {
		h.points = h.points[len(h.points)-historyLen:]
	}
}

// snapshot returns the samples, plus a live point for now.
func (h *history) snapshot(now time.Time) []Point {
	h.sample(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]Point(nil), h.points...)
	// The live point joins the next sample: drop it from the ring again,
	// folding its counts forward.
	last := h.points[len(h.points)-1]
	h.points = h.points[:len(h.points)-1]
	h.lastOK -= last.Handshakes
	for k, v := range last.Refusals {
		h.lastRef[k] -= v
	}
	return out
}
