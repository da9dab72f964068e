package wssproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// This file names the real cause of a failed node dial, for the client's
// 502/504 body, /wssgate/ready and the logs, so an operator sees "DNS: no
// such host" rather than a generic "connection refused".

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// dialCause is a short description of why the node could not be reached,
// naming no address, so it is safe to show to internet clients.
func dialCause(err error) string {
	if s := tlsCause(err); s != "" {
		return s
	}
	var dnsErr *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "DNS: no such host"
		case dnsErr.IsTimeout:
			return "DNS: lookup timed out"
		}
		return "DNS: lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the node"
	case isTimeout(err) && errors.As(err, &op) && op.Op == "dial":
		return "connect timed out"
	case isTimeout(err):
		return "timed out"
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the node"
	case errors.As(err, &op) && op.Op == "dial":
		return "connect failed"
	default:
		return "connection failed"
	}
}

// tlsCause describes a failed TLS handshake with the node, or returns "".
func tlsCause(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		return "TLS: the node's certificate is signed by an unknown authority"
	case errors.As(err, &hostname):
		return "TLS: the node's certificate is not valid for its name"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "TLS: the node's certificate has expired or is not yet valid"
	case errors.As(err, &invalid), errors.As(err, &verify):
		return "TLS: the node's certificate is not trusted"
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// http.Client turns the RecordHeaderError into a plain error.
		return "TLS: the node did not answer in TLS (is it ws:// rather than wss://?)"
	case errors.As(err, &alert):
		return "TLS: the node refused the handshake (" + strings.TrimPrefix(alert.Error(), "tls: ") + ")"
	}
	return ""
}

// statusCause describes a node's answer other than 101 to a WebSocket
// upgrade.
func statusCause(code int, status string) string {
	s := "node refused the WebSocket handshake (" + status + ")"
	switch code {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		s += ": it is at its connection or rate limit"
	case http.StatusForbidden:
		s += ": its host, origin or IP filter refused the gateway"
	case http.StatusMethodNotAllowed, http.StatusNotFound, http.StatusOK:
		s += ": the upstream URL may not be the node's RPC endpoint"
	}
	return s
}
