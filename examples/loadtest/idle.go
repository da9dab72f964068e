package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// idleConn is one held connection; dead is done once it closes.
type idleConn struct {
	conn *websocket.Conn
	dead context.Context
}

// runIdle opens -conns connections, -ramp at a time, holds them for -hold
// and reports the RSS they cost the processes named by -pid, -pidfile and
// -pgrep (and their descendants).
func runIdle(ctx context.Context, c *config, d *dialer, stderr io.Writer) (*Result, error) {
	pids, err := resolvePIDs(c)
	if err != nil {
		return nil, err
	}
	res := newResult(c)
	st := &IdleStats{PIDs: pids}
	res.Idle = st
	m := &meter{}
	if len(pids) > 0 {
		if st.RSSBeforeKiB, err = sumRSS(pids); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	conns := openIdle(ctx, c, d, m, stderr)
	st.OpenSeconds = time.Since(start).Seconds()
	defer func() {
		for _, ic := range conns {
			ic.conn.CloseNow()
		}
	}()
	st.Opened, st.Failed = len(conns), c.conns-len(conns)
	holdStart := time.Now()
	sleep(ctx, c.settle)
	if len(pids) > 0 {
		st.RSSOpenKiB, err = sumRSS(pids)
		if err != nil {
			return nil, err
		}
	}
	sleep(ctx, c.hold-time.Since(holdStart))
	if len(pids) > 0 {
		st.RSSEndKiB, err = sumRSS(pids)
		if err != nil {
			return nil, err
		}
		if st.Opened > 0 {
			st.KiBPerConn = float64(max(st.RSSOpenKiB, st.RSSEndKiB)-st.RSSBeforeKiB) / float64(st.Opened)
		}
	}
	res.Seconds = time.Since(holdStart).Seconds()
	for _, ic := range conns {
		if ic.dead.Err() != nil {
			st.Dropped++
		}
	}
	if st.Dropped > 0 {
		m.fail(fmt.Errorf("%d connections closed during the hold", st.Dropped))
	}
	res.Errors, res.ErrorSamples, res.ErrorKinds = m.totalErrs.Load(), m.errorSamples, m.errorKinds
	res.Hint = hint(m.errorKinds)
	return res, nil
}

// openIdle opens the connections with c.ramp dialers at once. Each keeps a
// reader (CloseRead) so pings are answered and a close is noticed.
func openIdle(ctx context.Context, c *config, d *dialer, m *meter, stderr io.Writer) []idleConn {
	var (
		mu    sync.Mutex
		conns = make([]idleConn, 0, c.conns)
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	stop := idleProgress(c, &mu, &conns, stderr)
	defer stop()
	for range min(c.ramp, c.conns) {
		wg.Go(func() {
			for next.Add(1) <= int64(c.conns) && ctx.Err() == nil {
				conn, _, err := d.dial(ctx)
				if err != nil {
					m.fail(err)
					continue
				}
				// The reader ends when runIdle closes the conn.
				dead := conn.CloseRead(context.Background())
				mu.Lock()
				conns = append(conns, idleConn{conn, dead})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns
}

func idleProgress(c *config, mu *sync.Mutex, conns *[]idleConn, stderr io.Writer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				n := len(*conns)
				mu.Unlock()
				fmt.Fprintf(stderr, "loadtest: idle %d/%d open\n", n, c.conns)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
