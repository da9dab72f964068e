package wssproxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// testKey is a Sec-WebSocket-Key and its Sec-WebSocket-Accept.
const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

var testAccept = acceptKey(testKey)

// TestReadUpgrade checks the node's answer as RFC 6455 section 4.1 asks,
// reading HTTP's header syntax as net/http does where it matters: names
// and tokens case-insensitive, lists in one line or several, LF line
// ends; and takes the bytes after the headers as the node's first frames.
func TestReadUpgrade(t *testing.T) {
	t.Parallel()
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n"
	for _, tt := range []struct {
		name, resp string
		subs       []string
		sub, early string
		err        string // "" for success
	}{
		{name: "plain", resp: ok + "\r\n"},
		{name: "early bytes", resp: ok + "\r\n\x81\x02hi", early: "\x81\x02hi"},
		{name: "subprotocol", resp: ok + "Sec-WebSocket-Protocol: b\r\n\r\n", subs: []string{"a", "b"}, sub: "b"},
		{name: "case and lists", resp: "HTTP/1.1 101 OK\nupgrade: WebSocket\nconnection: keep-alive, upgrade\nsec-websocket-accept: " + testAccept + "\n\n"},
		{name: "connection on two lines", resp: "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n"},
		{name: "refused", resp: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", err: "node answered the upgrade with 403 Forbidden"},
		{name: "redirect", resp: "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n", err: "301 Moved Permanently"},
		{name: "not HTTP", resp: "SSH-2.0-OpenSSH_9.2\r\n", err: "not HTTP/1.1"},
		{name: "bad code", resp: "HTTP/1.1 1x1 Switching\r\n\r\n", err: "not HTTP/1.1"},
		{name: "wrong accept", resp: strings.Replace(ok, testAccept, "bm9wZQ==", 1) + "\r\n", err: "wrong Sec-WebSocket-Accept"},
		{name: "no upgrade", resp: strings.Replace(ok, "Upgrade: websocket\r\n", "", 1) + "\r\n", err: "lacks Connection: Upgrade or Upgrade: websocket"},
		{name: "unoffered subprotocol", resp: ok + "Sec-WebSocket-Protocol: c\r\n\r\n", subs: []string{"a"}, err: `subprotocol "c"`},
		{name: "extension", resp: ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", err: "chose an extension"},
		{name: "folded line", resp: ok + "X-A: 1\r\n continued\r\n\r\n", err: "malformed"},
		{name: "no colon", resp: ok + "garbage\r\n\r\n", err: "malformed"},
		{name: "too many lines", resp: ok + strings.Repeat("X-A: 1\r\n", maxUpgradeLines) + "\r\n", err: "too many"},
		{name: "line over 4 KiB", resp: ok + "X-A: " + strings.Repeat("a", 5<<10) + "\r\n\r\n", err: "over 4 KiB"},
		{name: "cut short", resp: ok, err: "unexpected EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub, early, err := readUpgrade(strings.NewReader(tt.resp), []byte(testKey), tt.subs)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one naming %q", err, tt.err)
			case tt.err == "" && (sub != tt.sub || string(early) != tt.early):
				t.Fatalf("subprotocol %q, early %q; want %q, %q", sub, early, tt.sub, tt.early)
			}
		})
	}
	var refused *nodeRefusal
	_, _, err := readUpgrade(strings.NewReader("HTTP/1.1 503 Service Unavailable\r\n\r\n"), []byte(testKey), nil)
	if !errors.As(err, &refused) || refused.code != 503 {
		t.Errorf("503: %v, want a nodeRefusal with code 503", err)
	}
}

// FuzzReadUpgrade: no answer makes the parser panic, and one it accepts
// is a 101 that carries the right Sec-WebSocket-Accept.
func FuzzReadUpgrade(f *testing.F) {
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\nxyz"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 101 \nupgrade:websocket\nconnection:upgrade\n\n"))
	f.Fuzz(func(t *testing.T, resp []byte) {
		_, early, err := readUpgrade(bytes.NewReader(resp), []byte(testKey), []string{"a"})
		if err != nil {
			return
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.")) || !bytes.Contains(resp, []byte(testAccept)) {
			t.Fatalf("accepted %q", resp)
		}
		if !bytes.HasSuffix(resp, early) {
			t.Fatalf("early bytes %q are not the answer's tail", early)
		}
	})
}

// TestNodeTLSResumes: dials to a wss:// node resume the TLS session of an
// earlier one (the per-node config keeps a session cache), so a client's
// handshake does not cost a full TLS handshake with the node too.
func TestNodeTLSResumes(t *testing.T) {
	t.Parallel()
	resumed := make(chan bool, 4)
	node := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resumed <- r.TLS.DidResume
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Read(r.Context()) // until the gateway closes
	}))
	node.StartTLS()
	t.Cleanup(node.Close)
	roots := x509.NewCertPool()
	roots.AddCert(node.Certificate())
	_, url := startProxy(t, "wss"+strings.TrimPrefix(node.URL, "https"), &Options{UpstreamTLS: &tls.Config{RootCAs: roots}})
	for i, want := range []bool{false, true} {
		c := dial(t, url, nil)
		if got := <-resumed; got != want {
			t.Errorf("dial %d: node saw a resumed session %v, want %v", i, got, want)
		}
		c.CloseNow()
	}
}
