// Command loadtest measures a WebSocket JSON-RPC endpoint (wssgate, or any
// proxy in front of a node) and serves the echo upstream the measurements
// need:
//
//	go run ./examples/loadtest -mode serve -listen 127.0.0.1:9944
//	go run ./examples/loadtest -url wss://127.0.0.1:8443 -ca cert.pem -mode rtt
//
// Modes: rtt (lockstep request/reply latency), pipe (a window of requests in
// flight), fanout (the upstream pushes), handshake (new connections per
// second), idle (memory per idle connection, from /proc) and serve (the
// echo upstream). Requests are real JSON-RPC calls: -method with -params
// (system_health by default, a cheap read any node serves), or bench_echo
// padded to -size bytes for the benchmarks against the echo upstream.
//
// Errors do not stop a run: error replies are counted and the connection
// goes on, broken connections are dialed again. The table counts errors by
// kind (rpc -32005, http 429, close 1008, refused, ...) and gives a hint
// when the endpoint's limits answered. Results print as a table, or as one
// JSON object with -json; a run that saw errors prints what it measured,
// says so and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/wssgate/wssgate/internal/cliusage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cliusage.Exit("loadtest", err)
}

// config is what the flags set.
type config struct {
	mode, url        string
	method, params   string
	maxErrors        int64
	caFile           string
	insecure, resume bool
	classic          bool
	jsonOut          bool
	conns, size, n   int
	window           int
	rate             float64
	duration, warmup time.Duration
	hold, settle     time.Duration
	pids, pgrep      string
	pidfile          string
	ramp             int
	listen           string
	tlsCert, tlsKey  string
	cpuprofile       string
	readLimit        int64
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cliusage.Set(fs, "Command loadtest measures a WebSocket JSON-RPC endpoint (a node, wssgate or any proxy) with real calls, and serves the echo upstream the benchmarks need.",
		"go run ./examples/loadtest -url wss://127.0.0.1:8443 -ca wssgate-cert/cert.pem -mode rtt -method system_health")
	c := &config{}
	fs.StringVar(&c.mode, "mode", "rtt", "rtt, pipe, fanout, handshake, idle or serve")
	fs.StringVar(&c.url, "url", "", "endpoint to measure, ws:// or wss://")
	fs.StringVar(&c.method, "method", "system_health", "rtt, pipe, handshake: the JSON-RPC method to call (bench_echo: the echo upstream's call, padded to -size)")
	fs.StringVar(&c.params, "params", "[]", "rtt, pipe, handshake: the JSON array of -method's parameters")
	fs.Int64Var(&c.maxErrors, "max-errors", 100000, "stop the run after this many errors (results so far are kept)")
	fs.StringVar(&c.caFile, "ca", "", "PEM file of certificates to trust for wss:// (e.g. the gateway's cert.pem)")
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the server certificate")
	fs.BoolVar(&c.resume, "resume", false, "handshake: allow TLS session resumption (default: a full handshake every time)")
	fs.BoolVar(&c.classic, "x25519", false, "offer only the classic X25519 key exchange (default: Go's, X25519MLKEM768 first), to compare like for like with OpenSSL servers")
	fs.BoolVar(&c.jsonOut, "json", false, "print the results as one JSON object")
	fs.IntVar(&c.conns, "conns", 1, "connections (rtt, pipe, fanout, idle) or dialing workers (handshake)")
	fs.IntVar(&c.size, "size", 100, "message size in bytes (requests, replies and pushes)")
	fs.IntVar(&c.n, "n", 0, "rtt, pipe, fanout: stop each connection after this many measured messages (0: run for -duration)")
	fs.IntVar(&c.window, "window", 64, "pipe: requests in flight per connection")
	fs.Float64Var(&c.rate, "rate", 0, "fanout: pushes per second per connection (0: as fast as possible)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "time before measuring starts (excluded from results)")
	fs.DurationVar(&c.hold, "hold", 10*time.Second, "idle: how long to hold the connections once all are open")
	fs.DurationVar(&c.settle, "settle", time.Second, "idle: wait after the last connection opens before reading RSS")
	fs.StringVar(&c.pids, "pid", "", "idle: comma-separated PIDs whose RSS (with their descendants') is summed")
	fs.StringVar(&c.pidfile, "pidfile", "", "idle: file holding a PID to add to -pid (e.g. nginx's; descendants included)")
	fs.StringVar(&c.pgrep, "pgrep", "", "idle: add every process whose command line contains this string")
	fs.IntVar(&c.ramp, "ramp", 64, "idle: connections being opened at once")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9944", "serve: address to listen on")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve: PEM certificate; with -tls-key, serve wss:// instead of ws://")
	fs.StringVar(&c.tlsKey, "tls-key", "", "serve: PEM private key for -tls-cert")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	fs.Int64Var(&c.readLimit, "read-limit", 64<<20, "largest message read, in bytes")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch c.mode {
	case "serve":
		if (c.tlsCert == "") != (c.tlsKey == "") {
			return errors.New("-tls-cert and -tls-key go together")
		}
		return nil
	case "rtt", "pipe", "fanout", "handshake", "idle":
	default:
		return fmt.Errorf("unknown -mode %q", c.mode)
	}
	switch {
	case c.url == "":
		return errors.New("-url is required")
	case c.conns < 1:
		return errors.New("-conns must be at least 1")
	case c.window < 1:
		return errors.New("-window must be at least 1")
	case c.size < 0 || int64(c.size) > c.readLimit:
		return errors.New("-size must be between 0 and -read-limit")
	case c.duration <= 0 && c.n <= 0 && c.mode != "idle":
		return errors.New("-duration or -n must be positive")
	case c.ramp < 1:
		return errors.New("-ramp must be at least 1")
	case c.method == "":
		return errors.New("-method must not be empty")
	case !json.Valid([]byte(c.params)) || !strings.HasPrefix(strings.TrimSpace(c.params), "["):
		return fmt.Errorf("-params %q is not a JSON array", c.params)
	case c.maxErrors < 1:
		return errors.New("-max-errors must be at least 1")
	}
	return nil
}

// run parses args and runs one mode until it finishes or ctx ends. Results
// go to stdout, progress to stderr. A run that counted errors prints its
// results and then returns an error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	raiseFileLimit(stderr)
	if c.cpuprofile != "" {
		stop, err := startCPUProfile(c.cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.mode == "serve" {
		return serve(ctx, c, stdout, stderr)
	}
	d, err := newDialer(c)
	if err != nil {
		return err
	}
	var res *Result
	switch c.mode {
	case "rtt":
		res, err = runRTT(ctx, c, d, stderr)
	case "pipe":
		res, err = runPipe(ctx, c, d, stderr)
	case "fanout":
		res, err = runFanout(ctx, c, d, stderr)
	case "handshake":
		res, err = runHandshake(ctx, c, d, stderr)
	case "idle":
		res, err = runIdle(ctx, c, d, stderr)
	}
	if err != nil {
		return err
	}
	if err := res.print(stdout, c.jsonOut); err != nil {
		return err
	}
	if res.Errors > 0 {
		if res.Hint != "" {
			fmt.Fprintln(stderr, "loadtest: hint:", res.Hint)
		}
		return fmt.Errorf("%d errors during the run (first: %s); the results above are what was measured", res.Errors, res.ErrorSamples[0])
	}
	return nil
}

func startCPUProfile(name string) (stop func(), err error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
