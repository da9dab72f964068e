package wssproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// headsReadLimit bounds a message on the head subscription connection:
// headers with their digests are a few KiB.
const headsReadLimit = 1 << 20

// The subscription requests of the head watcher, by id.
var headSubscriptions = [...]string{1: "chain_subscribeNewHeads", 2: "chain_subscribeFinalizedHeads"}

// watchHeads keeps a chain_subscribeNewHeads and a
// chain_subscribeFinalizedHeads subscription open on node b, on a
// connection of the gateway's own, until ctx ends. After a failure the
// health checks poll the heads, and the subscriptions are tried again
// every HealthInterval.
func (p *Proxy) watchHeads(ctx context.Context, b *backend) {
	for {
		err := p.followHeads(ctx, b)
		lost := b.health.setSubscribed(false)
		if ctx.Err() != nil || !p.headsEnded(ctx, b, err, lost) {
			return
		}
	}
}

// errMissedHeads ends a head connection whose subscriptions missed a head
// that a poll found.
var errMissedHeads = errors.New("wssproxy: head subscriptions missed heads")

// headMessage is a reply or a notification on the head connection.
type headMessage struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Method string `json:"method"`
	Params struct {
		Result struct {
			Number string `json:"number"`
		} `json:"result"`
	} `json:"params"`
}

// followHeads subscribes to b's heads and records them until the
// connection fails or ctx ends. It pings the node every HealthInterval, so
// that a connection that died silently is noticed rather than taken for a
// stalled chain.
func (p *Proxy) followHeads(ctx context.Context, b *backend) error {
	dctx, cancel := context.WithTimeout(ctx, p.opts.HandshakeTimeout)
	c, _, err := websocket.Dial(dctx, b.url.String(), &websocket.DialOptions{
		HTTPClient:      p.wsDial,
		HTTPHeader:      p.opts.UpstreamHeader.Clone(),
		CompressionMode: websocket.CompressionDisabled,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %s", dialCause(err))
	}
	defer c.CloseNow()
	c.SetReadLimit(headsReadLimit)
	var missed atomic.Bool
	b.health.setResubscribe(func() {
		missed.Store(true)
		c.CloseNow()
	})
	defer b.health.setResubscribe(nil)
	ctx, cancel = context.WithCancel(ctx)
	var pinger sync.WaitGroup
	defer pinger.Wait()
	defer cancel()
	pinger.Go(func() { p.pingHeads(ctx, c) })
	for id, method := range headSubscriptions {
		if id == 0 {
			continue
		}
		req := `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"` + method + `","params":[]}`
		if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
			return err
		}
	}
	confirmed := 0
	for {
		_, data, err := c.Read(ctx)
		if missed.Load() {
			return errMissedHeads
		}
		if err != nil {
			return err
		}
		var m headMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return errors.New("node sent a message that is not JSON-RPC")
		}
		switch {
		case m.Method == "":
			if m.Error != nil {
				return fmt.Errorf("subscribing to heads: error %d %s", m.Error.Code, m.Error.Message)
			}
			if confirmed++; confirmed == len(headSubscriptions)-1 && b.health.setSubscribed(true) {
				p.log.LogAttrs(ctx, slog.LevelDebug, "wssproxy: following heads", slog.String("upstream", b.host))
			}
		case m.Method == "chain_newHead" || m.Method == "chain_finalizedHead":
			n, err := strconv.ParseUint(m.Params.Result.Number, 0, 64)
			if err != nil {
				return fmt.Errorf("%s: block number %q", m.Method, m.Params.Result.Number)
			}
			if m.Method == "chain_finalizedHead" {
				b.health.observeFinalized(n)
			} else if d, ok := b.health.observeBest(n, p.opts.now()); ok {
				p.blockTimes.add(d)
			}
		}
	}
}

// pingHeads pings the head connection every HealthInterval, and closes it
// when a pong does not come within HandshakeTimeout.
func (p *Proxy) pingHeads(ctx context.Context, c *websocket.Conn) {
	t := time.NewTicker(p.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, p.opts.HandshakeTimeout)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			c.CloseNow()
			return
		}
	}
}

// headsEnded logs why node b's head subscriptions ended (err; lost
// reports whether they had been up) and, unless they only missed heads
// and are to be made again at once, waits HealthInterval before the next
// try, while the health checks poll. It reports false if ctx ended.
func (p *Proxy) headsEnded(ctx context.Context, b *backend, err error, lost bool) bool {
	if errors.Is(err, errMissedHeads) {
		p.log.LogAttrs(ctx, slog.LevelInfo, "wssproxy: head subscriptions missed heads; subscribing again",
			slog.String("upstream", b.host))
		return true
	}
	level := slog.LevelDebug
	if lost {
		level = slog.LevelInfo
	}
	p.log.LogAttrs(ctx, level, "wssproxy: head subscriptions down; polling heads",
		slog.String("upstream", b.host), slog.String("error", err.Error()))
	t := time.NewTimer(p.opts.HealthInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
