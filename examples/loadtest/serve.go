package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// serve runs the benchmark upstream until ctx ends: it prints
// "serving ws://ADDR" (or wss://) on stdout once it accepts connections.
func serve(ctx context.Context, c *config, stdout, stderr io.Writer) error {
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &echoHandler{readLimit: c.readLimit}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(stderr, "loadtest serve: ", 0),
	}
	scheme := "ws"
	if c.tlsCert != "" {
		scheme = "wss"
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			ln.Close()
			return err
		}
		// HTTP/1.1 only: WebSocket upgrades need it.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "serving %s://%s\n", scheme, ln.Addr())
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		srv.Close()
		<-serveErr
		err = nil
	}
	// ctx is every request's base context: cancelling it ends the
	// handlers, hijacked ones included.
	cancel()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
	return err
}

// echoHandler is the JSON-RPC-ish upstream: it answers every text call
// with a reply of the same size and id, echoes binary messages, and on
// bench_fanout pushes notifications until the connection closes.
type echoHandler struct {
	readLimit int64

	mu     sync.Mutex
	closed bool // no new handlers once serve is waiting for them
	wg     sync.WaitGroup
}

func (h *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	if r.Method == http.MethodPost {
		servePost(w, r)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // any Origin: browsers are not the point here
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(h.readLimit)
	ctx, cancel := context.WithCancel(r.Context())
	var pushers sync.WaitGroup
	defer pushers.Wait()
	defer cancel() // runs first: stops the pusher
	var in, out []byte
	pushing := false
	for {
		typ, b, err := readMsg(ctx, conn, in)
		in = b
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			if conn.Write(ctx, typ, in) != nil {
				return
			}
			continue
		}
		id, method := callHead(in)
		fanout := method == "bench_fanout" && !pushing
		size := len(in)
		if fanout {
			size = 0
		}
		out = appendReply(out[:0], id, size)
		if conn.Write(ctx, websocket.MessageText, out) != nil {
			return
		}
		if fanout { // after the reply, which the client waits for
			size, rate := fanoutParams(in)
			pushing = true
			pushers.Go(func() { push(ctx, conn, size, rate) })
		}
	}
}

// callHead returns a call's raw id and its method, scanning only the head
// of the message when it has the usual compact form.
func callHead(msg []byte) (id []byte, method string) {
	head := msg[:min(len(msg), headScan)]
	id, okID := field(head, `"id":`)
	m, okM := field(head, `"method":`)
	if okID && okM && len(m) >= 2 && m[0] == '"' {
		return id, string(m[1 : len(m)-1])
	}
	var call struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(msg, &call) != nil || len(call.ID) == 0 {
		return []byte("null"), call.Method
	}
	return call.ID, call.Method
}

func fanoutParams(msg []byte) (size int, rate float64) {
	var call struct {
		Params []float64 `json:"params"`
	}
	size = 100
	if json.Unmarshal(msg, &call) == nil {
		if len(call.Params) > 0 {
			size = int(call.Params[0])
		}
		if len(call.Params) > 1 {
			rate = call.Params[1]
		}
	}
	return size, rate
}

// appendReply appends a result reply with id, padded to size bytes.
func appendReply(b, id []byte, size int) []byte {
	const suffix = `"}`
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":"`...)
	b = appendPad(b, size-len(b)-len(suffix))
	return append(b, suffix...)
}

// push sends bench_fanout notifications of size bytes, at rate per second
// (0: as fast as the connection takes them), until ctx ends or a write
// fails.
func push(ctx context.Context, conn *websocket.Conn, size int, rate float64) {
	const prefix = `{"jsonrpc":"2.0","method":"bench_fanout","params":{"subscription":1,"result":"`
	const suffix = `"}}`
	msg := append([]byte(prefix), suffix...)
	if pad := size - len(msg); pad > 0 {
		msg = appendPad([]byte(prefix), pad)
		msg = append(msg, suffix...)
	}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	for i := int64(0); ctx.Err() == nil; i++ {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				sleep(ctx, wait)
			}
		}
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			return
		}
	}
}

// servePost answers JSON-RPC over HTTP as far as a gateway's health checks
// ask: system_health says a healthy node, and chain_getHeader and
// chain_getFinalizedHead give a chain that makes a final block every
// second; any other method is not found. So a gateway in front of the
// echo upstream counts it healthy, as it would a real node, instead of
// serving from an "unhealthy" one.
var serveStart = time.Now()

func servePost(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	type call struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	var calls []call
	batch := len(body) > 0 && body[0] == '['
	if batch {
		err = json.Unmarshal(body, &calls)
	} else {
		calls = make([]call, 1)
		err = json.Unmarshal(body, &calls[0])
	}
	if err != nil {
		http.Error(w, "loadtest serve: not a JSON-RPC call", http.StatusBadRequest)
		return
	}
	replies := make([]map[string]any, len(calls))
	for i, c := range calls {
		replies[i] = map[string]any{"jsonrpc": "2.0", "id": c.ID}
		head := fmt.Sprintf("0x%x", time.Since(serveStart)/time.Second+1)
		switch c.Method {
		case "system_health":
			replies[i]["result"] = map[string]any{"peers": 1, "isSyncing": false, "shouldHavePeers": false}
		case "chain_getHeader":
			replies[i]["result"] = map[string]any{"number": head}
		case "chain_getFinalizedHead":
			replies[i]["result"] = "0x" + strings.Repeat("0", 64)
		default:
			replies[i]["error"] = map[string]any{"code": -32601, "message": "Method not found"}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if batch {
		json.NewEncoder(w).Encode(replies)
	} else {
		json.NewEncoder(w).Encode(replies[0])
	}
}
