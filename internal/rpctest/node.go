package rpctest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// DefaultMaxMessageSize is Substrate's default --rpc-max-request-size and
// --rpc-max-response-size, 15 MiB.
const DefaultMaxMessageSize = 15 << 20

// Options configures a [Node]. The zero value serves on a random loopback
// port and produces blocks only when [Node.Advance] is called.
type Options struct {
	// Addr is the TCP address to listen on.
	// If empty, 127.0.0.1:0 (a random free port).
	Addr string

	// BlockInterval is how often the node produces a block on its own.
	// If zero, blocks come only from Advance and SetBestBlock.
	BlockInterval time.Duration

	// MaxMessageSize limits both a request (WebSocket message or HTTP body)
	// and a response. A larger request closes the WebSocket with status
	// 1009 or gets HTTP 413; a larger response is replaced by the error
	// -32008 "Response is too big", as jsonrpsee does.
	// If zero, DefaultMaxMessageSize. If negative, no limit.
	MaxMessageSize int64

	// Subprotocols are the WebSocket subprotocols the node may select.
	// If nil, it selects none, as a Substrate node.
	Subprotocols []string

	// TLSConfig, if set, makes the node serve TLS (wss:// and https://).
	// If nil, plain TCP, like a Substrate node.
	TLSConfig *tls.Config

	// SafeRPCMethods makes the node refuse its unsafe methods (those of
	// [UnsafeMethods]) as a Substrate node run with --rpc-methods safe
	// does: with error -32601 "RPC call is unsafe to be called
	// externally". If false, it answers them, as a node with
	// --rpc-methods unsafe (or auto, to a local client) does.
	// [Node.SetSafeRPCMethods] changes it while the node runs.
	SafeRPCMethods bool

	// Logger receives debug logs of connections and warnings of dropped
	// slow clients. If nil, slog.Default().
	Logger *slog.Logger
}

// Health is the reply of system_health and GET /health.
type Health struct {
	Peers           int  `json:"peers"`
	IsSyncing       bool `json:"isSyncing"`
	ShouldHavePeers bool `json:"shouldHavePeers"`
}

// Node is a fake Substrate node serving JSON-RPC over WebSocket and HTTP on
// one port, with real runtime metadata so that @polkadot/api can connect.
// Create it with [Start]; stop it with [Node.Close] or [Node.Kill].
type Node struct {
	opts     Options
	static   *static
	ln       *trackingListener
	srv      *http.Server
	scheme   string
	logger   *slog.Logger
	killCtx  context.Context // canceled when the node stops
	kill     context.CancelFunc
	wg       sync.WaitGroup // ticker and serve loop
	handlers sync.WaitGroup // every HTTP handler, WebSockets included

	mu      sync.Mutex
	closed  bool
	chain   *chain
	health  Health
	conns   map[*wsConn]struct{}
	seen    []string
	seenCh  chan struct{} // closed and replaced when seen grows
	headers []http.Header
	stall   chan struct{} // non-nil while stalled; closed by Resume

	safeRPC         bool // refuse unsafe methods
	blocksPaused    bool // the BlockInterval producer makes no blocks
	finalityStalled bool // new blocks are not finalized
}

// Start listens on opts.Addr and serves until Close or Kill. A nil opts is
// the zero Options.
func Start(opts *Options) (*Node, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	st, err := loadStatic()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("rpctest: %w", err)
	}
	n := &Node{
		opts:   o,
		static: st,
		ln:     &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}},
		scheme: "ws",
		logger: logger,
		chain:  newChain(),
		conns:  map[*wsConn]struct{}{},
		seenCh: make(chan struct{}),

		safeRPC: o.SafeRPCMethods,
	}
	n.killCtx, n.kill = context.WithCancel(context.Background())
	n.srv = &http.Server{
		Handler:           http.HandlerFunc(n.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	var serveLn net.Listener = n.ln
	if o.TLSConfig != nil {
		serveLn = tls.NewListener(n.ln, o.TLSConfig)
		n.scheme = "wss"
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.srv.Serve(serveLn)
	}()
	if o.BlockInterval > 0 {
		n.wg.Add(1)
		go n.produce(o.BlockInterval)
	}
	return n, nil
}

// produce makes a block every interval, unless paused, until the node
// stops.
func (n *Node) produce(interval time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.killCtx.Done():
			return
		case <-t.C:
			n.mu.Lock()
			if !n.blocksPaused {
				n.advanceLocked()
			}
			n.mu.Unlock()
		}
	}
}

// Addr returns the host:port the node listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// URL returns the WebSocket URL, ws://host:port (wss:// with TLSConfig).
func (n *Node) URL() string { return n.scheme + "://" + n.Addr() }

// HTTPURL returns the HTTP URL, http://host:port (https:// with TLSConfig).
func (n *Node) HTTPURL() string {
	if n.opts.TLSConfig != nil {
		return "https://" + n.Addr()
	}
	return "http://" + n.Addr()
}

// Seen returns the methods of the requests received so far over WebSocket
// and HTTP, batch items included, in order of arrival. A batch's methods
// are recorded together, once it is handled.
func (n *Node) Seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.seen)
}

// WaitSeen blocks until at least count requests were received or ctx ends.
func (n *Node) WaitSeen(ctx context.Context, count int) error {
	for {
		n.mu.Lock()
		got, ch := len(n.seen), n.seenCh
		n.mu.Unlock()
		if got >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rpctest: saw %d of %d requests: %w", got, count, ctx.Err())
		case <-ch:
		}
	}
}

func (n *Node) recordSeen(methods ...string) {
	if len(methods) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seen = append(n.seen, methods...)
	close(n.seenCh)
	n.seenCh = make(chan struct{})
}

// Headers returns the request headers of each WebSocket handshake, in
// order. Go keeps the Host header apart from the others; the node adds it
// back under "Host".
func (n *Node) Headers() []http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]http.Header, len(n.headers))
	for i, h := range n.headers {
		out[i] = h.Clone()
	}
	return out
}

// Advance produces a block on top of the best one and notifies the
// subscribers of new and all heads, and of finalized heads unless
// finality is stalled. It returns the new height. It works while blocks
// are paused: PauseBlocks only stops the BlockInterval producer.
func (n *Node) Advance() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.advanceLocked()
}

func (n *Node) advanceLocked() uint64 {
	b := n.chain.next()
	n.announce(b, n.finalizeLocked())
	return b.number
}

// finalizeLocked finalizes the best block unless finality is stalled, and
// returns the newly finalized block, or nil if there is none.
func (n *Node) finalizeLocked() *block {
	if n.finalityStalled || n.chain.finalized == n.chain.best() {
		return nil
	}
	n.chain.finalized = n.chain.best()
	return n.chain.finalized
}

// SetBestBlock makes height best the chain's head and notifies the head
// subscribers. A jump of more than 4096 blocks leaves the blocks between
// unknown (chain_getBlockHash gives null for them). Unless finality is
// stalled the new head is finalized too.
func (n *Node) SetBestBlock(best uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	before := n.chain.finalized
	n.chain.setBest(best)
	fin := n.finalizeLocked()
	if fin == nil && n.chain.finalized != before { // set back below it
		fin = n.chain.finalized
	}
	n.announce(n.chain.best(), fin)
}

// PauseBlocks stops the producer of Options.BlockInterval: the chain's
// head stays where it is, as on a node that lost its block authors or
// its peers, until ResumeBlocks. Advance and SetBestBlock still work.
func (n *Node) PauseBlocks() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocksPaused = true
}

// ResumeBlocks undoes PauseBlocks; the next block comes on the producer's
// next tick.
func (n *Node) ResumeBlocks() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocksPaused = false
}

// StallFinality stops finalizing blocks, as a chain whose GRANDPA voters
// are stuck: new heads keep coming, but chain_getFinalizedHead and the
// finalized heads subscriptions stay at the current finalized block until
// ResumeFinality.
func (n *Node) StallFinality() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.finalityStalled = true
}

// ResumeFinality ends StallFinality: the best block is finalized at once
// and announced to the finalized heads subscribers.
func (n *Node) ResumeFinality() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.finalityStalled = false
	if b := n.finalizeLocked(); b != nil {
		n.announce(nil, b)
	}
}

// FinalizedBlock returns the height and hash of the finalized block.
func (n *Node) FinalizedBlock() (uint64, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.chain.finalized
	return b.number, b.hash
}

// DropSubscriptions forgets every subscription of every connection
// without a word to the clients, as a node that silently stopped feeding
// them: they get no more notifications, though the chain goes on.
func (n *Node) DropSubscriptions() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		clear(c.subs)
	}
}

// SetSafeRPCMethods switches between refusing the unsafe methods (true, as
// --rpc-methods safe) and answering them (false); see
// Options.SafeRPCMethods.
func (n *Node) SetSafeRPCMethods(safe bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.safeRPC = safe
}

func (n *Node) unsafeRefused(method string) bool {
	if _, ok := unsafeMethods[method]; !ok {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.safeRPC
}

// BestBlock returns the height and hash of the best block.
func (n *Node) BestBlock() (uint64, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.chain.best()
	return b.number, b.hash
}

// SetHealth sets what system_health and GET /health report.
// The zero Health (no peers, not syncing, no peers expected) is the default
// and is ready.
func (n *Node) SetHealth(h Health) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.health = h
}

// Health returns what system_health reports.
func (n *Node) Health() Health {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.health
}

// Conns returns the number of open WebSocket connections.
func (n *Node) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

// Stall makes the node unresponsive while it keeps accepting TCP
// connections: new HTTP requests and WebSocket handshakes get no answer,
// and requests on open WebSockets are recorded by Seen but not answered,
// nor are notifications sent. Resume undoes it.
func (n *Node) Stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stall == nil {
		n.stall = make(chan struct{})
	}
}

// Resume ends a Stall. Requests that arrived meanwhile stay unanswered,
// except the HTTP requests and handshakes still waiting, which proceed.
func (n *Node) Resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resumeLocked()
}

func (n *Node) resumeLocked() {
	if n.stall != nil {
		close(n.stall)
		n.stall = nil
	}
}

// waitStall blocks while the node is stalled. It reports false if the node
// stopped or the request ended meanwhile.
func (n *Node) waitStall(ctx context.Context) bool {
	n.mu.Lock()
	ch := n.stall
	n.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-n.killCtx.Done():
			return false
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.closed
}

// track counts a handler in n.handlers unless the node is stopping.
func (n *Node) track() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.handlers.Add(1)
	return true
}

// Kill stops the node as a crash would: it closes the listener and every
// TCP connection at once, without WebSocket close frames or HTTP replies.
// Kill after Close or Kill does nothing.
func (n *Node) Kill() {
	if !n.markClosed() {
		return
	}
	n.kill()
	n.ln.closeAll()
	n.srv.Close()
	n.handlers.Wait()
	n.wg.Wait()
}

// Close stops the node gracefully: it stops accepting, sends close frames
// with status 1001 (going away) on every WebSocket and waits for the
// clients' replies and the HTTP requests in flight, up to 5 seconds in
// all, then cuts what is left. A second Close returns net.ErrClosed.
func (n *Node) Close() error {
	if !n.markClosed() {
		return net.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.mu.Lock()
	conns := make([]*wsConn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { c.ws.Close(websocketGoingAway, "node shutting down") })
	}
	// A handshake that completed before markClosed but registers after it
	// closes itself the same way (see serveWS).
	err := n.srv.Shutdown(ctx)
	handlersDone := make(chan struct{})
	go func() {
		n.handlers.Wait()
		close(handlersDone)
	}()
	select {
	case <-handlersDone:
	case <-ctx.Done():
	}
	n.kill()
	n.ln.closeAll()
	<-handlersDone
	closing.Wait()
	n.wg.Wait()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("rpctest: close: %w", err)
	}
	return nil
}

// markClosed flips the node to closed once, ending any stall.
func (n *Node) markClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.closed = true
	n.resumeLocked()
	return true
}

// trackingListener remembers the TCP connections it accepted so that Kill
// can cut them, including the ones that http.Server no longer tracks after
// a WebSocket hijack.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
	conns  map[*trackedConn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes the listener and every connection.
func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*trackedConn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
