package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// errorKind names the kind of a run error for the table: "rpc -32005",
// "http 429", "close 1008", "refused", "timeout", "tls", or "other".
func errorKind(err error) string {
	var re *rpcError
	var se *statusError
	var ne net.Error
	var ce *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("rpc %d", re.Code)
	case errors.As(err, &se):
		return fmt.Sprintf("http %d", se.code)
	case websocket.CloseStatus(err) != -1:
		return fmt.Sprintf("close %d", websocket.CloseStatus(err))
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ce) || errors.As(err, &ua) || strings.Contains(err.Error(), "tls:"):
		return "tls"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") || errors.Is(err, syscall.ECONNRESET):
		return "closed"
	}
	return "other"
}

// limitHint is printed when the run met a gateway's limits.
const limitHint = "the endpoint's limits refused calls or connections (-32005: per-connection call rate; 429: handshakes or connections per client): raise the gateway's -msg-rate/-msg-burst, -rate/-burst and -max-conns-per-client for a load test, or use fewer -conns"

// hint returns advice for the errors seen, or "".
func hint(kinds map[string]int64) string {
	if kinds["rpc -32005"] > 0 || kinds["http 429"] > 0 {
		return limitHint
	}
	if kinds["rpc -32601"] > 0 {
		return "-32601: the endpoint does not serve -method (or its policy refuses it); try -method system_health"
	}
	if kinds["tls"] > 0 {
		return "TLS: pass the gateway's certificate with -ca (e.g. wssgate-cert/cert.pem), or -insecure"
	}
	return ""
}

// Retries after transport failures.
const (
	maxDialFailures = 10                     // in a row, per connection, before it gives up
	redialPause     = 100 * time.Millisecond // between failed dials
)

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
