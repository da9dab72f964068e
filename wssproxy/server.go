package wssproxy

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server timeouts and limits used by [NewServer].
const (
	// ServerReadHeaderTimeout cuts clients that trickle their request
	// headers (slowloris).
	ServerReadHeaderTimeout = 10 * time.Second
	// ServerIdleTimeout closes idle keep-alive HTTP connections.
	ServerIdleTimeout = 120 * time.Second
	// ServerMaxHeaderBytes refuses absurd request headers with 431.
	ServerMaxHeaderBytes = 16 << 10
)

// NewServer returns an http.Server for h with the timeouts a public
// endpoint needs: a header read timeout against slow handshakes, a bound
// on header size, an idle timeout for keep-alive HTTP connections, and its
// errors logged to logger (nil: slog.Default()). No read or write timeout
// is set on the whole request, since WebSockets are long-lived; the proxy
// bounds those itself. tlsConfig may be nil for plain HTTP (behind a TLS
// terminating load balancer). The server speaks HTTP/1.1 only, since
// WebSocket upgrades need it. Serve it on a listener from [NewListener].
func NewServer(addr string, h http.Handler, tlsConfig *tls.Config, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.Default()
	}
	var protos http.Protocols
	protos.SetHTTP1(true) // WebSocket upgrades need HTTP/1.1; never negotiate h2
	return &http.Server{
		Protocols:         &protos,
		Addr:              addr,
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: ServerReadHeaderTimeout,
		IdleTimeout:       ServerIdleTimeout,
		MaxHeaderBytes:    ServerMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// NewListener wraps a TCP listener for a server of the proxy: the relay
// can then tell when a client's socket has nothing more to read (which a
// blocking read cannot), and sends the node the calls of a whole burst in
// one write instead of one write per TLS record. Serve TLS on it as on
// inner (http.Server.ServeTLS wraps it in crypto/tls). Connections from
// any other listener are relayed just as correctly, with more writes.
func NewListener(inner net.Listener) net.Listener {
	return hookListener{inner}
}

type hookListener struct{ net.Listener }

func (l hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newHookConn(c), nil
}
