package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssgate/wssgate/certs"
)

// startServe runs serve mode in-process on 127.0.0.1:0 and returns its URL.
// With tls, it serves a fresh self-signed certificate and also returns the
// path of its PEM file for -ca.
func startServe(t *testing.T, withTLS bool) (url, caFile string) {
	t.Helper()
	args := []string{"-mode", "serve", "-listen", "127.0.0.1:0"}
	if withTLS {
		certFile, keyFile := writeSelfSigned(t)
		args = append(args, "-tls-cert", certFile, "-tls-key", keyFile)
		caFile = certFile
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, pw, io.Discard); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve did not start: %v", err)
	}
	go io.Copy(io.Discard, pr)
	return strings.TrimSpace(strings.TrimPrefix(line, "serving ")), caFile
}

func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	s := &certs.SelfSigned{Hosts: []string{"127.0.0.1"}, Logger: slog.New(slog.DiscardHandler)}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	cert := s.Certificate()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// runJSON runs a client mode with -json and returns its result and error.
func runJSON(t *testing.T, args ...string) (*Result, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append(args, "-json"), &out, &errOut)
	if out.Len() == 0 {
		t.Fatalf("no result printed (err %v); stderr:\n%s", err, errOut.String())
	}
	var res Result
	if derr := json.Unmarshal(out.Bytes(), &res); derr != nil {
		t.Fatalf("result is not JSON: %v\n%s", derr, out.String())
	}
	return &res, err
}

func checkLatency(t *testing.T, l *Latency) {
	t.Helper()
	if l == nil {
		t.Fatal("no latency")
	}
	if !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max && l.Mean <= l.Max) {
		t.Errorf("latency out of order: %+v", *l)
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	short := []string{"-duration", "300ms", "-warmup", "100ms"}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, r *Result)
	}{
		{"rtt", append([]string{"-mode", "rtt"}, short...), func(t *testing.T, r *Result) {
			checkLatency(t, r.Latency)
			if r.Bytes != r.Msgs*100 {
				t.Errorf("bytes %d, want %d msgs of 100 B", r.Bytes, r.Msgs)
			}
		}},
		{"rtt-n", []string{"-mode", "rtt", "-conns", "4", "-n", "50", "-warmup", "0"}, func(t *testing.T, r *Result) {
			if r.Msgs != 200 || r.Latency.Samples != 200 {
				t.Errorf("msgs %d, samples %d; want 4 conns x 50", r.Msgs, r.Latency.Samples)
			}
		}},
		{"pipe", append([]string{"-mode", "pipe", "-conns", "2", "-window", "16"}, short...), func(t *testing.T, r *Result) {
			checkLatency(t, r.Latency)
		}},
		{"pipe-64k", append([]string{"-mode", "pipe", "-size", "65536", "-window", "8"}, short...), func(t *testing.T, r *Result) {
			if r.Bytes != r.Msgs*65536 || r.MBPerSec <= 0 {
				t.Errorf("bytes %d for %d msgs (%.1f MB/s); want 64 KiB each", r.Bytes, r.Msgs, r.MBPerSec)
			}
		}},
		{"fanout", append([]string{"-mode", "fanout", "-conns", "2", "-size", "200"}, short...), func(t *testing.T, r *Result) {
			if r.Bytes != r.Msgs*200 || r.Latency != nil {
				t.Errorf("bytes %d for %d msgs, latency %v; want 200 B pushes, no latency", r.Bytes, r.Msgs, r.Latency)
			}
		}},
		{"fanout-rate", []string{"-mode", "fanout", "-rate", "100", "-duration", "500ms", "-warmup", "0"}, func(t *testing.T, r *Result) {
			if r.MsgsPerSec < 50 || r.MsgsPerSec > 150 {
				t.Errorf("%.0f msgs/s at -rate 100", r.MsgsPerSec)
			}
		}},
		{"handshake", append([]string{"-mode", "handshake", "-conns", "2"}, short...), func(t *testing.T, r *Result) {
			checkLatency(t, r.Latency)
			if r.ConnsPerSec <= 0 || r.Resumed != 0 {
				t.Errorf("%.0f conns/s, %d resumed; want > 0 and none resumed", r.ConnsPerSec, r.Resumed)
			}
			if strings.HasPrefix(r.URL, "wss:") != strings.HasPrefix(r.TLS, "TLS 1.3") {
				t.Errorf("url %s, tls %q", r.URL, r.TLS)
			}
		}},
		{"idle", []string{"-mode", "idle", "-conns", "40", "-ramp", "8", "-hold", "200ms", "-settle", "50ms", "-pid", fmt.Sprint(os.Getpid())}, func(t *testing.T, r *Result) {
			s := r.Idle
			if s == nil || s.Opened != 40 || s.Failed != 0 || s.Dropped != 0 || s.RSSBeforeKiB <= 0 || s.RSSOpenKiB <= 0 {
				t.Errorf("idle stats %+v", s)
			}
		}},
	}
	for _, scheme := range []string{"ws", "wss"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			url, ca := startServe(t, scheme == "wss")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					args := append([]string{"-url", url, "-method", "bench_echo"}, tt.args...)
					if ca != "" {
						args = append(args, "-ca", ca)
					}
					r, err := runJSON(t, args...)
					if err != nil || r.Errors != 0 {
						t.Fatalf("run: %v; %d errors %q", err, r.Errors, r.ErrorSamples)
					}
					if r.Mode != "idle" && (r.Msgs <= 0 || r.Seconds <= 0) {
						t.Errorf("msgs %d in %.2fs", r.Msgs, r.Seconds)
					}
					tt.check(t, r)
				})
			}
		})
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	url, ca := startServe(t, true)
	r, err := runJSON(t, "-url", url, "-ca", ca, "-mode", "handshake", "-resume", "-duration", "200ms", "-warmup", "50ms")
	if err != nil {
		t.Fatal(err)
	}
	if r.Resumed == 0 || r.Resumed > r.Msgs {
		t.Errorf("%d of %d handshakes resumed with -resume", r.Resumed, r.Msgs)
	}
}

// TestClassicX25519: -x25519 makes the handshakes use the classic group,
// and the default takes Go's hybrid one.
func TestClassicX25519(t *testing.T) {
	t.Parallel()
	url, ca := startServe(t, true)
	for _, tt := range []struct {
		args  []string
		curve string
	}{{nil, "X25519MLKEM768"}, {[]string{"-x25519"}, "X25519"}} {
		args := append([]string{"-url", url, "-ca", ca, "-mode", "handshake", "-duration", "100ms", "-warmup", "10ms"}, tt.args...)
		r, err := runJSON(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(r.TLS); len(f) < 3 || f[2] != tt.curve {
			t.Errorf("%v: TLS %q, want the %s group", tt.args, r.TLS, tt.curve)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	url, ca := startServe(t, true)
	tests := []struct {
		name string
		args []string
	}{
		{"untrusted certificate", []string{"-url", url, "-mode", "rtt", "-n", "1"}},
		{"refused", []string{"-url", "ws://127.0.0.1:1", "-mode", "rtt", "-n", "1", "-ca", ca}},
		{"idle refused", []string{"-url", "ws://127.0.0.1:1", "-mode", "idle", "-conns", "3", "-hold", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := runJSON(t, tt.args...)
			if err == nil || r.Errors == 0 || len(r.ErrorSamples) == 0 {
				t.Errorf("err %v, %d errors; want the run to fail", err, r.Errors)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-mode", "rtt"},                                  // no -url
		{"-mode", "nope", "-url", "ws://x"},               // bad mode
		{"-mode", "rtt", "-url", "ws://x", "-conns", "0"}, // no conns
		{"-mode", "serve", "-tls-cert", "c.pem"},          // no key
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}

func TestRequestAndReply(t *testing.T) {
	t.Parallel()
	req := newRequest(100)
	for _, id := range []int64{1, 99999, 1 << 40} {
		msg := req.build(id)
		var call struct {
			JSONRPC string
			ID      int64
			Method  string
			Params  []string
		}
		if len(msg) != 100 || json.Unmarshal(msg, &call) != nil || call.ID != id || call.Method != "bench_echo" {
			t.Errorf("build(%d) = %d bytes %s", id, len(msg), msg)
		}
		rawID, method := callHead(msg)
		reply := appendReply(nil, rawID, len(msg))
		if method != "bench_echo" || len(reply) != 100 || !json.Valid(reply) || checkReply(1, reply, id) != nil {
			t.Errorf("reply to %s = %s (method %q)", msg, reply, method)
		}
	}
	if err := checkReply(1, []byte(`{"jsonrpc":"2.0","id":7,"error":{"code":-32601}}`), 7); err == nil {
		t.Error("an error reply passed checkReply")
	}
	if id, m := callHead([]byte(`{ "method" : "bench_fanout", "params":[1,2], "id" : "a b" }`)); string(id) != `"a b"` || m != "bench_fanout" {
		t.Errorf("callHead fallback = %s, %q", id, m)
	}
}

func TestHist(t *testing.T) {
	t.Parallel()
	var h hist
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		got, want := float64(h.quantile(q)), q*100000*1e3
		if d := (got - want) / want; d < -0.005 || d > 0.005 {
			t.Errorf("quantile(%v) = %v, want %v within 0.5%%", q, got, want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("quantile(1) = %v, want the max", h.quantile(1))
	}
	for v := int64(0); v < 1<<20; v += 7 {
		i := histIndex(v)
		if lo, hi := histValue(i), histValue(i+1); v > hi || float64(lo-v) > 0.004*float64(v)+1 {
			t.Fatalf("value %d in bucket %d [%d..%d]", v, i, lo, hi)
		}
	}
}
