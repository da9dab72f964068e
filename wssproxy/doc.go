// Package wssproxy is an http.Handler that puts a blockchain node's plain
// ws:// JSON-RPC endpoint behind a wss:// server.
//
// [New] builds a [Proxy] for one node URL. Mount it on an [http.Server]
// (see [NewServer] for one with safe timeouts) that serves TLS, and point
// wallets, indexers and Polkadot-JS UI at wss://host:
//
//	p, err := wssproxy.New("ws://127.0.0.1:9944", nil)
//	if err != nil {
//		log.Fatal(err)
//	}
//	ln, err := net.Listen("tcp", ":443")
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv := wssproxy.NewServer(":443", p, certs.TLSConfig(src), nil)
//	log.Fatal(srv.ServeTLS(wssproxy.NewListener(ln), "", ""))
//
// [NewListener] is optional, and worth it: on it the relay sees when a
// client's socket runs dry, so a client pipelining calls costs the node
// one write per burst rather than one per call.
//
// For each WebSocket handshake the proxy dials the node first, so a node
// that is down costs the client an HTTP 502 with a reason rather than a
// socket that dies at once; then it accepts the client and relays frames
// both ways, preserving type, boundaries and order, streaming long messages
// so memory per connection stays bounded. Close codes and reasons pass
// both ways. Plain HTTP requests (JSON-RPC POSTs, GET /health) are
// forwarded to the node's http:// (https:// for wss://) URL. With
// [Options.NodeWarmConns] the proxy keeps node connections dialed ahead,
// and a client on the node's own path takes one instead of waiting for a
// dial; the node then sees none of that client's forwarded headers.
//
// # The relay
//
// In splice mode (the default, one node connection per client) no
// WebSocket library is on the connection's path: the proxy answers the
// client's handshake and makes the node's (RFC 6455 section 4) with
// net/http, and then relays RFC 6455 frames itself (internal/wsframe). It
// passes frames on as they came (a client's masked frames go to the node
// still masked), checks what RFC 6455 asks a server to check of a client
// (masking, reserved bits, opcodes, control frames, fragmentation, UTF-8
// of text and close reasons: 1002 or 1007 otherwise), unmasks a copy only
// of what the JSON-RPC inspection must read, and builds a frame only for a
// message the inspection changed. What it reads while the source socket
// holds more goes out in one write, once the socket runs dry (on Linux
// and other Unix systems, for sockets from [NewListener] and the node
// dialer; elsewhere, the frames of one read go out in one write). A connection holds a pooled read or write buffer only while data
// is in flight. On Linux an idle connection holds no goroutine either:
// each direction's copier hands its socket to one epoll poller after a
// second without traffic (at once on a new connection) and is started
// again when bytes arrive or the connection ends; elsewhere it blocks in
// its read. (github.com/coder/websocket serves shared mode, whose
// node connections carry many sessions' messages, the health checks' head
// subscriptions, the tests and the examples.)
//
// # Compression
//
// With a client that offers permessage-deflate (RFC 7692), as browsers and
// Node's ws do, the gateway compresses the text messages it sends of
// 1 KiB or more and inflates the ones the client compresses, so the node
// only ever sees plain frames ([Options.Deflate], on by default). A
// client's compressed message is bounded inflated by [Options.ReadLimit]
// (1009 over it; 1007 if it does not inflate); RSV1 is a protocol error
// (1002) without the extension or on any but a message's first frame.
// Compressors come from pools and are held only while a message is in
// flight, unless [DeflateOptions.ContextTakeover] is set.
//
// # Security
//
// By default ([Options.Policy] nil) the proxy reads every client message
// and refuses the methods a Substrate node marks unsafe ([UnsafeMethods],
// such as author_insertKey), answering them with a JSON-RPC error; a node
// bound to 127.0.0.1 with --rpc-methods auto would otherwise serve them to
// every internet client. Batches are judged element by element, HTTP POSTs
// likewise. A message the policy cannot read (not JSON) is answered, not
// forwarded. [AllowAll] turns inspection off for a pure splice.
//
// Per-client limits ([Options.RequestLimit], [Options.ConnLimit]) act
// before the node is dialed; message limits ([Options.MessageRate],
// [Options.ClientMessageLimit], [Options.MaxSubscriptions]) act inside the
// stream. Clients are identified by [Options.Key]: the peer address, or
// what [Options.TrustedProxies] report. Serve with [NewServer], whose
// timeouts and header limits a public endpoint needs.
//
// # Headers
//
// The node is sent its own Host (a node bound to localhost rejects any
// other), X-Forwarded-For (the peer appended to what trusted proxies sent),
// X-Forwarded-Proto and X-Forwarded-Host. The browser's Origin is dropped
// unless [Options.ForwardOrigin] is set: [Options.AllowedOrigins] decides.
// A connection dialed ahead ([Options.NodeWarmConns]) carries none of
// these but Host: it was made before its client was known.
//
// # Close codes
//
// A close frame from either peer is passed to the other with its code and
// reason, except a node's 1001 (going away: it is shutting down), which
// reaches the client as 1012 (service restart) since the gateway stays.
// Otherwise: a client that vanishes, stops answering pings or stops
// reading leaves the node a 1001 (going away); a node that vanishes or
// stops answering pings leaves the client a 1012 so it reconnects; a
// message over [Options.ReadLimit] gets its sender 1009 (at the frame
// header that declares it); a frame that breaks RFC 6455 gets its sender
// 1002; [Proxy.Shutdown] sends both 1001.
//
// # Shared mode
//
// By default each client WebSocket gets a node connection of its own. With
// [Options.Share] set, clients share a few node connections per node
// ([ShareOptions]): the gateway sends their calls under ids of its own and
// routes the replies back with the clients' ids; subscriptions whose
// notifications are the same for everyone (chain_subscribeNewHeads and its
// aliases, finalized and all heads, the runtime version, storage keys,
// GRANDPA and BEEFY justifications) are opened once on the node and fanned
// out, each client under its own subscription id; other subscriptions
// (watched extrinsics, chainHead_v1_follow and the calls naming it) stay
// the client's own, on one node connection; answers that cannot change
// (calls naming a block hash, the genesis hash, the chain's name) are
// cached. Waiting calls are bounded and served round robin by client key;
// a client that stops reading is closed with 1008 once
// [ShareOptions.ClientBacklog] messages wait for it. When a node
// connection drops, shared subscriptions move to another one (missed heads
// are fetched and delivered), read-only calls in flight are sent again,
// other calls get a JSON-RPC error, follows end with a "stop" event, and
// a client holding another subscription of its own there is closed with
// 1012.
// The policy and message limits judge each call as without it;
// [Options.IdleTimeout] does not apply. JSON-RPC POSTs go over the same
// node connections and cache (but subscription calls, which the node
// refuses over HTTP); other HTTP requests are forwarded as without it.
//
// # Shutdown
//
// Hijacked WebSocket connections are invisible to [http.Server.Shutdown].
// Call [Proxy.Shutdown] as well: it sends every client 1001 after the
// message in flight and waits, bounded by its context.
package wssproxy
