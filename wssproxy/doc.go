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
//	srv := wssproxy.NewServer(":443", p, certs.TLSConfig(src), nil)
//	log.Fatal(srv.ListenAndServeTLS("", ""))
//
// For each WebSocket handshake the proxy dials the node first, so a node
// that is down costs the client an HTTP 502 with a reason rather than a
// socket that dies at once; then it accepts the client and copies messages
// both ways, preserving type, boundaries and order, streaming long messages
// so memory per connection stays bounded. Close codes and reasons pass
// both ways. Plain HTTP requests (JSON-RPC POSTs, GET /health) are
// forwarded to the node's http:// (https:// for wss://) URL.
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
//
// # Close codes
//
// A close frame from either peer is passed to the other with its code and
// reason, except a node's 1001 (going away: it is shutting down), which
// reaches the client as 1012 (service restart) since the gateway stays.
// Otherwise: a client that vanishes, stops answering pings or stops
// reading leaves the node a 1001 (going away); a node that vanishes or
// stops answering pings leaves the client a 1012 so it reconnects; a message over [Options.ReadLimit] gets its sender 1009;
// [Proxy.Shutdown] sends both 1001.
//
// # Shutdown
//
// Hijacked WebSocket connections are invisible to [http.Server.Shutdown].
// Call [Proxy.Shutdown] as well: it sends every client 1001 after the
// message in flight and waits, bounded by its context.
package wssproxy
