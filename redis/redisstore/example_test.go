package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/wssgate/wssgate/certs"
	"github.com/wssgate/wssgate/redis/redisstore"
	"github.com/wssgate/wssgate/wssproxy"
)

// Wiring a replica: one Store from the -redis URL, its limiters in the
// proxy's Options and its cache in certs.ACME. Every replica runs the
// same code with the same URL. Here nothing listens at the URL, so the
// replica starts on its local limits (and would switch to the shared
// ones as soon as Redis answered).
func Example() {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := redisstore.Open(context.Background(), "redis://127.0.0.1:1/0", log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	handshakes := st.Limiter("handshakes", 2, 2) // limit_req rate=2r/s burst=2, across replicas
	proxy, err := wssproxy.New("ws://127.0.0.1:9944", &wssproxy.Options{
		RequestLimit:       handshakes,
		ClientMessageLimit: st.Limiter("messages", 50, 100), // JSON-RPC calls per client
		ConnLimit:          st.Conns("conns", 50, 10000),    // per client and in total
		Logger:             log,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proxy.Close()
	acme := &certs.ACME{
		Domains: []string{"rpc.example.com"},
		Cache:   st.CertCache(0, nil), // RenewBefore as certs.ACME's: autocert's default
	}
	_ = certs.TLSConfig(acme) // the :443 listener's config

	for range 3 {
		ok, _ := handshakes.Allow("203.0.113.7")
		fmt.Println("allowed:", ok)
	}
	s := st.Status()
	fmt.Println("redis up:", s.Up, "local decisions:", s.Fallbacks["handshakes"])
	// Output:
	// allowed: true
	// allowed: true
	// allowed: false
	// redis up: false local decisions: 3
}
