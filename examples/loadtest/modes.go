package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// runRTT: each connection sends a call and waits for its reply. Error
// replies are counted and the connection goes on; a broken connection is
// counted and dialed again (a connection gives up after maxDialFailures
// failed dials in a row).
func runRTT(ctx context.Context, c *config, d *dialer, stderr io.Writer) (*Result, error) {
	return drive(ctx, c, stderr, func(ctx context.Context, w *worker) error {
		req, buf := newCall(c), make([]byte, 0, c.size+512)
		var conn *websocket.Conn
		defer func() {
			if conn != nil {
				conn.CloseNow()
			}
		}()
		failures := 0
		for id := int64(1); ctx.Err() == nil && !w.done(); id++ {
			if conn == nil {
				var err error
				if conn, err = dialOrCount(ctx, d, w, &failures); err != nil {
					return err
				}
				if conn == nil {
					continue
				}
			}
			t0 := time.Now()
			var err error
			buf, err = roundTrip(ctx, conn, req, id, buf)
			var re *rpcError
			switch {
			case err == nil:
				w.record(time.Since(t0), len(buf))
			case ctx.Err() != nil:
				return nil
			case errors.As(err, &re):
				w.m.fail(err)
			default:
				w.m.fail(err)
				conn.CloseNow()
				conn = nil
			}
		}
		return nil
	})
}

// dialOrCount dials for a worker. A failure is counted and returns a nil
// conn after a pause; after maxDialFailures in a row it returns an error,
// which ends the worker.
func dialOrCount(ctx context.Context, d *dialer, w *worker, failures *int) (*websocket.Conn, error) {
	conn, _, err := d.dial(ctx)
	if err == nil {
		*failures = 0
		w.ready()
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	if *failures++; *failures >= maxDialFailures {
		w.ready()
		return nil, fmt.Errorf("%w (giving up after %d failed dials in a row)", err, *failures)
	}
	w.m.fail(err)
	w.ready() // the others need not wait for this one
	pause(ctx, redialPause)
	return nil, nil
}

// runPipe: each connection keeps -window calls in flight. Replies come back
// in order, so a FIFO of send times gives each reply's latency.
func runPipe(ctx context.Context, c *config, d *dialer, stderr io.Writer) (*Result, error) {
	return drive(ctx, c, stderr, func(ctx context.Context, w *worker) error {
		conn, _, err := d.dial(ctx)
		if err != nil {
			return err
		}
		defer conn.CloseNow()
		w.ready()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sent := make(chan time.Time, c.window)
		var wg sync.WaitGroup
		var werr error
		wg.Go(func() { werr = pipeWrite(ctx, conn, newCall(c), sent) })
		rerr := pipeRead(ctx, conn, w, sent, c.size)
		cancel()
		wg.Wait()
		if rerr != nil && !errors.Is(rerr, context.Canceled) {
			return rerr
		}
		if werr != nil && !errors.Is(werr, context.Canceled) {
			return werr
		}
		return nil
	})
}

func pipeWrite(ctx context.Context, conn *websocket.Conn, req *request, sent chan<- time.Time) error {
	for id := int64(1); ; id++ {
		select {
		case sent <- time.Now():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := conn.Write(ctx, websocket.MessageText, req.build(id)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

func pipeRead(ctx context.Context, conn *websocket.Conn, w *worker, sent <-chan time.Time, size int) error {
	buf := make([]byte, 0, size+512)
	for id := int64(1); !w.done(); id++ {
		typ, b, err := readMsg(ctx, conn, buf)
		buf = b
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read: %w", err)
		}
		t0 := <-sent // the writer queues a time before each write
		var re *rpcError
		if err := checkReply(typ, buf, id); errors.As(err, &re) {
			w.m.fail(err) // answered with an error: count it and go on
			continue
		} else if err != nil {
			return err
		}
		w.record(time.Since(t0), len(buf))
	}
	return nil
}

// runFanout: each connection asks the upstream to push and counts what
// arrives.
func runFanout(ctx context.Context, c *config, d *dialer, stderr io.Writer) (*Result, error) {
	res, err := drive(ctx, c, stderr, func(ctx context.Context, w *worker) error {
		conn, _, err := d.dial(ctx)
		if err != nil {
			return err
		}
		defer conn.CloseNow()
		call := `{"jsonrpc":"2.0","id":1,"method":"bench_fanout","params":[` +
			strconv.Itoa(c.size) + `,` + strconv.FormatFloat(c.rate, 'f', -1, 64) + `]}`
		if err := conn.Write(ctx, websocket.MessageText, []byte(call)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		typ, buf, err := readMsg(ctx, conn, make([]byte, 0, c.size+512))
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if err := checkReply(typ, buf, 1); err != nil {
			return err
		}
		w.ready()
		for ctx.Err() == nil && !w.done() {
			if typ, buf, err = readMsg(ctx, conn, buf); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if typ != websocket.MessageText {
				return errors.New("push is not a text message")
			}
			w.record(-1, len(buf))
		}
		return nil
	})
	if res != nil {
		res.Latency = nil
	}
	return res, err
}

// runHandshake: each worker opens a connection, makes one call and closes
// it, over and over. Latency is the WebSocket dial (TCP, TLS, upgrade).
func runHandshake(ctx context.Context, c *config, d *dialer, stderr io.Writer) (*Result, error) {
	var mu sync.Mutex
	var resumed int64
	var tlsDesc string
	res, err := drive(ctx, c, stderr, func(ctx context.Context, w *worker) error {
		w.ready()
		req, buf := newCall(c), make([]byte, 0, c.size+512)
		var myResumed int64
		defer func() { mu.Lock(); resumed += myResumed; mu.Unlock() }()
		failures := 0
		for ctx.Err() == nil && !w.done() {
			t0 := time.Now()
			conn, resp, err := d.dial(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if failures++; failures >= maxDialFailures {
					return fmt.Errorf("%w (giving up after %d failed dials in a row)", err, failures)
				}
				w.m.fail(err)
				pause(ctx, redialPause)
				continue
			}
			failures = 0
			lat := time.Since(t0)
			didResume := resp.TLS != nil && resp.TLS.DidResume
			if resp.TLS != nil && w.id == 0 {
				mu.Lock()
				tlsDesc = tls.VersionName(resp.TLS.Version) + " " + resp.TLS.CurveID.String() + " " + tls.CipherSuiteName(resp.TLS.CipherSuite)
				mu.Unlock()
			}
			buf, err = roundTrip(ctx, conn, req, 1, buf)
			if err != nil {
				conn.CloseNow()
				if ctx.Err() == nil {
					w.m.fail(err)
				}
				continue
			}
			if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil && ctx.Err() == nil {
				return fmt.Errorf("close: %w", err)
			}
			if w.record(lat, 0) && didResume {
				myResumed++
			}
		}
		return nil
	})
	if res != nil {
		res.ConnsPerSec, res.Resumed, res.TLS = res.MsgsPerSec, resumed, tlsDesc
		res.MsgsPerSec, res.Bytes, res.MBPerSec = 0, 0, 0
	}
	return res, err
}
