package wssproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// logBuffer collects a proxy's logs as text lines, for tests that check
// what is logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the logged lines that contain every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

func captureLogs(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	h := slog.NewTextHandler(io.MultiWriter(lb, tWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), lb
}

// nxdomainServer is a DNS server on loopback that answers every query
// with NXDOMAIN (no such name), and a resolver that asks it. The
// resolver's answers do not depend on the machine's DNS or network.
func nxdomainServer(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := bytes.Clone(buf[:n])
			resp[2] = 0x80 | buf[2]&0x01 // QR, opcode 0, RD copied
			resp[3] = 0x80 | 3           // RA, RCODE 3: NXDOMAIN
			clear(resp[6:12])            // no answer, authority or additional records
			if i := questionEnd(resp); i > 0 {
				resp = resp[:i]
			}
			pc.WriteTo(resp, from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// questionEnd returns the offset just past a DNS message's one question,
// dropping any EDNS record that followed it, or 0 if malformed.
func questionEnd(msg []byte) int {
	i := 12
	for i < len(msg) && msg[i] != 0 {
		i += int(msg[i]) + 1
	}
	if i+5 > len(msg) {
		return 0
	}
	return i + 5 // root label, type, class
}

// TestDialErrorsNameTheCause points the gateway at nodes that fail in
// each way a dial can, and checks that the client's 502/504, the node's
// readiness reason and the log all name the real cause.
func TestDialErrorsNameTheCause(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		prepare  func(t *testing.T, o *Options) string // returns the upstream
		status   int
		cause    string // in the body, /wssgate/ready and the log
		health   string // in /wssgate/ready after a health check
		logCause string // in the log's error attribute
	}{{
		name: "DNS",
		prepare: func(t *testing.T, o *Options) string {
			o.resolver = nxdomainServer(t)
			return "ws://nosuchhost.invalid:9944"
		},
		status: http.StatusBadGateway, cause: "node unavailable: DNS: no such host",
		health: "unreachable: DNS: no such host", logCause: "no such host",
	}, {
		name:    "refused",
		prepare: func(t *testing.T, o *Options) string { return "ws://" + freeAddr(t) },
		status:  http.StatusBadGateway, cause: "node unavailable: connection refused",
		health: "unreachable: connection refused", logCause: "connection refused",
	}, {
		name: "timeout",
		prepare: func(t *testing.T, o *Options) string {
			o.HandshakeTimeout = 200 * time.Millisecond
			return stallingNode(t)
		},
		status: http.StatusGatewayTimeout, cause: "node did not complete the WebSocket handshake in time",
		health: "unreachable: timed out", logCause: "i/o timeout",
	}, {
		name: "connect timeout",
		prepare: func(t *testing.T, o *Options) string {
			o.DialTimeout = time.Nanosecond // over before the SYN is answered
			return newEchoNode(t, nil).URL()
		},
		status: http.StatusGatewayTimeout, cause: "node did not complete the WebSocket handshake in time (connect timed out)",
		health: "unreachable: connect timed out", logCause: "i/o timeout",
	}, {
		name: "TLS unknown authority",
		prepare: func(t *testing.T, o *Options) string {
			srv := quietTLSServer(t)
			return "wss://" + srv.Listener.Addr().String()
		},
		status: http.StatusBadGateway, cause: "TLS: the node's certificate is signed by an unknown authority",
		health: "unreachable: TLS: the node's certificate is signed by an unknown authority", logCause: "x509",
	}, {
		name: "TLS wrong name",
		prepare: func(t *testing.T, o *Options) string {
			srv := quietTLSServer(t)
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			o.UpstreamTLS = &tls.Config{RootCAs: roots, ServerName: "node.other.test"}
			return "wss://" + srv.Listener.Addr().String()
		},
		status: http.StatusBadGateway, cause: "TLS: the node's certificate is not valid for its name",
		health: "unreachable: TLS: the node's certificate is not valid for its name", logCause: "x509",
	}, {
		name: "TLS to a plain node",
		prepare: func(t *testing.T, o *Options) string {
			return "wss://" + strings.TrimPrefix(newEchoNode(t, nil).URL(), "ws://")
		},
		status: http.StatusBadGateway, cause: "TLS: the node did not answer in TLS",
		health: "unreachable: TLS: the node did not answer in TLS", logCause: "does not look like a TLS handshake",
	}, {
		name:    "node answers 403",
		prepare: func(t *testing.T, o *Options) string { return statusNode(t, http.StatusForbidden) },
		status:  http.StatusBadGateway, cause: "node refused the WebSocket handshake (403 Forbidden)",
		health: "health query failed: 403 Forbidden", logCause: "403",
	}, {
		name:    "node answers 429",
		prepare: func(t *testing.T, o *Options) string { return statusNode(t, http.StatusTooManyRequests) },
		status:  http.StatusBadGateway, cause: "(429 Too Many Requests): it is at its connection or rate limit",
		health: "health query failed: 429 Too Many Requests", logCause: "429",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := captureLogs(t)
			opts := &Options{Logger: logger}
			p, url := startProxy(t, tt.prepare(t, opts), opts)

			_, resp, err := websocket.Dial(testCtx(t), url, nil)
			if err == nil || resp == nil {
				t.Fatalf("dial: %v, %v; want a refusal", err, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.cause) {
				t.Errorf("client got %d %q, want %d naming %q", resp.StatusCode, body, tt.status, tt.cause)
			}
			if got := readyReason(t, p); !strings.Contains(got, tt.cause) {
				t.Errorf("ready reason after the dial = %q, want it to name %q", got, tt.cause)
			}
			if l := logs.lines("level=WARN", "node dial failed", tt.cause, tt.logCause); len(l) != 1 {
				t.Errorf("want one WARN naming %q and %q, got %q in:\n%s", tt.cause, tt.logCause, l, logs)
			}
			p.checkAll()
			if got := readyReason(t, p); !strings.Contains(got, tt.health) {
				t.Errorf("ready reason after a health check = %q, want it to name %q", got, tt.health)
			}
		})
	}
}

// quietTLSServer is a TLS server with httptest's self-signed certificate
// that does not log the handshakes the gateway fails.
func quietTLSServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// readyReason returns the node's reason as /wssgate/ready shows it.
func readyReason(t *testing.T, p *Proxy) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/wssgate/ready", nil))
	var got struct {
		Ready bool
		Nodes []NodeStatus
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Nodes) != 1 {
		t.Fatalf("ready JSON %q: %v", rec.Body, err)
	}
	if got.Ready || rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ready = %v, %d with a failing node", got.Ready, rec.Code)
	}
	return got.Nodes[0].Reason
}

func TestUpstreamValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		upstreams []string
		want      string // "" for valid
	}{
		{[]string{"127.0.0.1:9944"}, `wssproxy: upstream "127.0.0.1:9944" has no scheme; did you mean "ws://127.0.0.1:9944"?`},
		{[]string{"localhost:9944/rpc"}, `did you mean "ws://localhost:9944/rpc"?`},
		{[]string{"ws://127.0.0.1:0"}, `wssproxy: upstream "ws://127.0.0.1:0": port "0" is not in 1-65535`},
		{[]string{"ws://127.0.0.1:99999"}, `port "99999" is not in 1-65535`},
		{[]string{"ws://127.0.0.1:"}, `port "" is not in 1-65535`},
		{[]string{"ws://[::1]:65536"}, `port "65536" is not in 1-65535`},
		{[]string{"ws://127.0.0.1:9944", "ws://127.0.0.1:0"}, `wssproxy: upstreams[1] "ws://127.0.0.1:0": port "0"`},
		{[]string{"ws://:9944"}, "missing host"},
		{[]string{"ftp://n:1"}, "scheme must be ws:// or wss://"},
		{[]string{"ws://127.0.0.1:9944"}, ""},
		{[]string{"ws://[::1]:65535/"}, ""},
		{[]string{"wss://node.example.com"}, ""},
	}
	for _, tt := range tests {
		p, err := NewPool(tt.upstreams, &Options{HealthInterval: -1})
		if err == nil {
			p.Close()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("NewPool(%q) = %v, want no error", tt.upstreams, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("NewPool(%q) = %v, want an error containing %q", tt.upstreams, err, tt.want)
		}
	}
}
