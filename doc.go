// Package wssgate puts a secure wss:// front door on a blockchain node's
// plain ws:// JSON-RPC port, as a Go library.
//
// A Substrate/Polkadot node serves JSON-RPC on ws://127.0.0.1:9944
// (WebSocket, and HTTP POST on the same port). Wallets, indexers and
// Polkadot-JS UI in a browser need it as wss://host. Operators put nginx
// (proxy_pass with Upgrade headers, limit_req) or Apache
// (mod_proxy_wstunnel, mod_qos) in front, with a Let's Encrypt or
// self-signed certificate. wssgate does that job inside a Go program, with
// safer defaults: the node's unsafe RPC methods never reach it, clients are
// limited by their real address (X-Forwarded-For only from trusted
// proxies), and limits also apply inside the WebSocket, per JSON-RPC call.
//
// The module holds four packages:
//
//   - [github.com/wssgate/wssgate/wssproxy]: the http.Handler. It dials the
//     node before accepting the client, splices the two WebSockets, proxies
//     plain HTTP JSON-RPC, applies the method policy and the limits, spreads
//     clients over a pool of nodes, and drains on Shutdown.
//   - [github.com/wssgate/wssgate/certs]: certificate sources for a
//     tls.Config: Let's Encrypt (ACME), PEM files with hot reload,
//     self-signed, and composition by server name.
//   - [github.com/wssgate/wssgate/ratelimit]: client keys, per-key token
//     buckets and connection caps, usable on their own as middleware.
//   - [github.com/wssgate/wssgate/metrics]: counters for the proxy's
//     metrics hooks, served as Prometheus text and expvar.
//
// # Quick start
//
//	src, err := certs.NewSelfSigned("node.example.com", "203.0.113.7")
//	if err != nil {
//		log.Fatal(err)
//	}
//	p, err := wssproxy.New("ws://127.0.0.1:9944", &wssproxy.Options{
//		RequestLimit: ratelimit.NewBuckets(2, 5),
//		ConnLimit:    &ratelimit.Conns{PerKey: 50},
//	})
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
// The examples directory has runnable programs: examples/basic (the
// operator binary: every flag, Let's Encrypt with -domain, a systemd unit),
// examples/acme (the smallest embedding of certs.ACME), examples/bootnode
// (a libp2p bootnode behind wss://), examples/testnode (a stand-in node)
// and examples/loadtest (a load generator for any wss:// endpoint).
package wssgate
