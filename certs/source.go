package certs

import (
	"crypto/tls"
	"errors"
	"slices"
)

// ALPNProto is the ALPN protocol of the ACME TLS-ALPN-01 challenge
// (RFC 8737). Sources that answer such challenges list it in NextProtos.
const ALPNProto = "acme-tls/1"

// Source supplies the certificate for a TLS handshake. It has the shape of
// [tls.Config.GetCertificate], so *autocert.Manager and the sources of this
// package all satisfy it.
type Source interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// NextProtoser is implemented by sources that need extra ALPN protocols on
// the listener, such as [ACME] which needs [ALPNProto]. [TLSConfig] adds them
// to NextProtos.
type NextProtoser interface {
	NextProtos() []string
}

// SourceFunc adapts a function to the [Source] interface.
type SourceFunc func(hello *tls.ClientHelloInfo) (*tls.Certificate, error)

// GetCertificate calls f(hello).
func (f SourceFunc) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f(hello)
}

var (
	_ Source       = SourceFunc(nil)
	_ Source       = (*SNI)(nil)
	_ NextProtoser = (*SNI)(nil)
)

// Static returns a Source that always serves cert. A nil cert fails every
// handshake.
func Static(cert *tls.Certificate) SourceFunc {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if cert == nil {
			return nil, errors.New("certs: Static: nil certificate")
		}
		return cert, nil
	}
}

// cipherSuites are the TLS 1.2 suites TLSConfig allows: ECDHE key exchange
// with an AEAD only. TLS 1.3 suites are not configurable and all qualify.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig returns a server config that takes its certificates from src.
//
// It allows TLS 1.2 and 1.3, with TLS 1.2 limited to ECDHE+AEAD suites. It
// offers only "http/1.1" over ALPN, because WebSocket upgrades need HTTP/1.1,
// plus whatever src lists through [NextProtoser] ("acme-tls/1" for [ACME], so
// that TLS-ALPN-01 challenges work on this listener). Session tickets stay
// on so that reconnect storms resume cheaply.
//
// TLSConfig panics if src is nil. The caller may change the result.
func TLSConfig(src Source) *tls.Config {
	if src == nil {
		panic("certs: TLSConfig: nil Source")
	}
	protos := []string{"http/1.1"}
	if np, ok := src.(NextProtoser); ok {
		for _, p := range np.NextProtos() {
			if !slices.Contains(protos, p) {
				protos = append(protos, p)
			}
		}
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   slices.Clone(cipherSuites),
		NextProtos:     protos,
		GetCertificate: src.GetCertificate,
	}
}

// isChallengeHello reports whether hello is an ACME TLS-ALPN-01 validation
// attempt: the CA offers exactly one protocol, acme-tls/1 (RFC 8737 3).
func isChallengeHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto
}
