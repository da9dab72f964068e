package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestBinarySplice sends libp2p-like binary traffic (random bytes, 1 B to
// 256 KiB, and a text frame that is not JSON) through the bootnode gateway
// over wss:// and checks it comes back byte for byte.
func TestBinarySplice(t *testing.T) {
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, msg)
		}
	}))
	defer node.Close()

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(runCtx, []string{"-listen", "127.0.0.1:0", "-upstream", "ws" + strings.TrimPrefix(node.URL, "http"),
			"-self-signed-dir", dir}, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// The client offers permessage-deflate, as a browser's js-libp2p does;
	// the bootnode declines it.
	c, resp, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client,
		CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("the bootnode negotiated %q", ext)
	}
	c.SetReadLimit(-1)
	rng := rand.New(rand.NewPCG(7, 7))
	msgs := [][]byte{[]byte("/multistream/1.0.0\n"), {0}}
	for _, n := range []int{1, 2, 125, 126, 65535, 65536, 100 << 10, 256 << 10} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		msgs = append(msgs, b)
	}
	for i, m := range msgs {
		typ := websocket.MessageBinary
		if i == 0 {
			typ = websocket.MessageText // not JSON: must pass untouched too
		}
		if err := c.Write(ctx, typ, m); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil || gotTyp != typ || !bytes.Equal(got, m) {
			t.Fatalf("message %d (%d bytes): got %v %d bytes, err %v", i, len(m), gotTyp, len(got), err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
