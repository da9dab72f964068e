package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Measurement phases.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// maxErrorSamples bounds the error messages a run keeps.
const maxErrorSamples = 5

// meter coordinates a run: the phase the workers record in, the totals the
// progress line shows, and the errors.
type meter struct {
	phase        atomic.Int32
	start, end   time.Time // measured window; written by drive only
	totalMsgs    atomic.Int64
	totalBytes   atomic.Int64
	totalErrs    atomic.Int64
	mu           sync.Mutex
	errorSamples []string
	errorKinds   map[string]int64
	maxErrors    int64  // abort the run at this many errors; 0: never
	abort        func() // stops the run
}

// fail counts an error by kind and keeps the first few messages.
func (m *meter) fail(err error) {
	if n := m.totalErrs.Add(1); m.maxErrors > 0 && n >= m.maxErrors && m.abort != nil {
		m.abort()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.errorKinds == nil {
		m.errorKinds = map[string]int64{}
	}
	m.errorKinds[errorKind(err)]++
	if len(m.errorSamples) < maxErrorSamples {
		m.errorSamples = append(m.errorSamples, err.Error())
	}
}

// worker is one connection's (or dialing loop's) view of a run. Only its
// own goroutine records into it; drive merges them after all return.
type worker struct {
	id    int
	m     *meter
	n     int // stop after n measured messages; 0: no limit
	ready func()
	msgs  int64
	bytes int64
	lat   hist
}

// record counts one message of size bytes, with its latency if lat >= 0.
// It reports whether the message was measured (not warm-up).
func (w *worker) record(lat time.Duration, size int) bool {
	w.m.totalMsgs.Add(1)
	w.m.totalBytes.Add(int64(size))
	if w.m.phase.Load() != phaseMeasure {
		return false
	}
	w.msgs++
	w.bytes += int64(size)
	if lat >= 0 {
		w.lat.record(lat)
	}
	return true
}

// done reports whether the worker has measured its -n messages.
func (w *worker) done() bool { return w.n > 0 && w.msgs >= int64(w.n) }

// workFunc runs one worker until ctx ends, w.done(), or an error. It calls
// w.ready once its connection is up; measuring starts when all are ready.
// An error after ctx has ended is not counted.
type workFunc func(ctx context.Context, w *worker) error

// drive runs c.conns workers: it waits until all are ready, warms up for
// c.warmup, measures for c.duration (or until every worker has its -n
// messages) and then stops them.
func drive(ctx context.Context, c *config, stderr io.Writer, work workFunc) (*Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &meter{maxErrors: c.maxErrors, abort: cancel}
	workers := make([]*worker, c.conns)
	var ready, wg sync.WaitGroup
	ready.Add(c.conns)
	for i := range workers {
		w := &worker{id: i, m: m, n: c.n, ready: sync.OnceFunc(ready.Done)}
		workers[i] = w
		wg.Go(func() {
			defer w.ready()
			if err := work(ctx, w); err != nil && ctx.Err() == nil {
				m.fail(err)
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	ready.Wait()
	stopProgress := startProgress(c, m, stderr)
	defer stopProgress()
	m.end = m.timeline(ctx, c, allDone)
	cancel()
	<-allDone
	return collect(c, m, workers), nil
}

// timeline runs the warm-up and measuring phases and returns when
// measuring ended.
func (m *meter) timeline(ctx context.Context, c *config, allDone <-chan struct{}) time.Time {
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-allDone:
		case <-ctx.Done():
		}
		return false
	}
	if wait(c.warmup) {
		m.start = time.Now()
		m.phase.Store(phaseMeasure)
		if c.n > 0 {
			select {
			case <-allDone:
			case <-ctx.Done():
			}
		} else {
			wait(c.duration)
		}
	}
	m.phase.Store(phaseDone)
	return time.Now()
}

func collect(c *config, m *meter, workers []*worker) *Result {
	res := newResult(c)
	var lat hist
	for _, w := range workers {
		res.Msgs += w.msgs
		res.Bytes += w.bytes
		lat.merge(&w.lat)
	}
	if !m.start.IsZero() {
		res.Seconds = m.end.Sub(m.start).Seconds()
	}
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Msgs) / res.Seconds
		res.MBPerSec = float64(res.Bytes) / res.Seconds / 1e6
	}
	res.Latency = lat.summary()
	res.Errors = m.totalErrs.Load()
	res.ErrorSamples = m.errorSamples
	res.ErrorKinds = m.errorKinds
	res.Hint = hint(m.errorKinds)
	if res.Msgs == 0 && res.Errors == 0 {
		res.Errors = 1
		res.ErrorSamples = []string{"no message was measured (is -warmup longer than the run?)"}
	}
	return res
}

// startProgress prints a line to stderr each second when the run is longer
// than 3 s. It returns a func that stops it and waits.
func startProgress(c *config, m *meter, stderr io.Writer) (stop func()) {
	if c.n > 0 || c.warmup+c.duration <= 3*time.Second {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		begin, lastMsgs, lastBytes := time.Now(), int64(0), int64(0)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				msgs, bytes := m.totalMsgs.Load(), m.totalBytes.Load()
				phase := "warm-up"
				if m.phase.Load() == phaseMeasure {
					phase = "measure"
				}
				fmt.Fprintf(stderr, "loadtest: %s %3.0fs %-7s %9.0f msgs/s %8.2f MB/s  errors %d\n",
					c.mode, now.Sub(begin).Seconds(), phase, float64(msgs-lastMsgs),
					float64(bytes-lastBytes)/1e6, m.totalErrs.Load())
				lastMsgs, lastBytes = msgs, bytes
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
