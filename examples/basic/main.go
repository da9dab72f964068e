// Command basic is the wssgate operator binary: it serves a Substrate
// node's ws:// JSON-RPC port as wss:// and https://.
//
//	go run ./examples/basic
//
// With no flags it listens on :8443, proxies to ws://127.0.0.1:9944, and
// serves a self-signed certificate for localhost, 127.0.0.1 and ::1, kept
// in ./wssgate-cert so its fingerprint survives restarts. With -domain
// (repeatable) and -email it gets Let's Encrypt certificates instead,
// answering TLS-ALPN-01 on :443 and HTTP-01 on :80. Every flag can also be
// set through an environment variable (WSSGATE_LISTEN, ...) or a -config
// file; -h lists them. SIGINT or SIGTERM shut it down gracefully (clients
// get 1001); SIGHUP reloads certificates, limits and the upstream list
// without dropping connections. The private -admin-listen address serves
// a live dashboard, /metrics and /ready.
//
// The program itself lives in internal/operator, so that binaries in
// other modules (such as one with Redis-shared limiters) can reuse it;
// wssgate.service beside this file runs it under systemd.
package main

import (
	"context"
	"io"
	"os"

	"github.com/wssgate/wssgate/internal/operator"
)

func main() {
	os.Exit(program.Main(context.Background(), os.Args[1:]))
}

var program = &operator.Program{Name: "wssgate"}

// run serves until ctx ends; tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- operator.Addrs) error {
	return program.Run(ctx, args, stdout, stderr, ready)
}
