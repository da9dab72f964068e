// Command testnode serves a fake Substrate node (JSON-RPC over WebSocket and
// HTTP, /health) so that the wssgate examples can be tried without a real
// node:
//
//	go run ./examples/testnode &
//	go run ./examples/basic
//
// It produces a block every -block-interval and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/internal/cliusage"
	"github.com/wssgate/wssgate/internal/rpctest"
)

func main() {
	cliusage.Exit("testnode", run(os.Args[1:]))
}

func run(args []string) error {
	fs := flag.NewFlagSet("testnode", flag.ContinueOnError)
	cliusage.Set(fs, "Command testnode serves a fake Substrate node (JSON-RPC over WebSocket and HTTP, /health) for trying the wssgate examples without a real node.",
		"go run ./examples/testnode -listen 127.0.0.1:9944 -block-interval 6s")
	listen := fs.String("listen", "127.0.0.1:9944", "address to serve JSON-RPC on")
	interval := fs.Duration("block-interval", 6*time.Second, "time between blocks; 0 for none")
	verbose := fs.Bool("v", false, "log every connection")
	rpcMethods := fs.String("rpc-methods", "unsafe", "safe: refuse the unsafe methods as a node run with --rpc-methods safe; unsafe: answer them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rpcMethods != "safe" && *rpcMethods != "unsafe" {
		return fmt.Errorf("-rpc-methods %q: want safe or unsafe", *rpcMethods)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	node, err := rpctest.Start(&rpctest.Options{
		Addr:           *listen,
		BlockInterval:  *interval,
		SafeRPCMethods: *rpcMethods == "safe",
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	logger.Info("serving fake Substrate node", "ws", node.URL(), "http", node.HTTPURL(), "block_interval", *interval)
	<-ctx.Done()
	stop()
	logger.Info("shutting down")
	return node.Close()
}
