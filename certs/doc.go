// Package certs supplies the TLS certificates of the wss:// front door.
//
// Every source implements [Source], the shape of
// [crypto/tls.Config.GetCertificate], and [TLSConfig] turns one into a
// server config with modern defaults:
//
//   - [ACME]: certificates from Let's Encrypt or another ACME CA, through
//     golang.org/x/crypto/acme/autocert, with TLS-ALPN-01 and HTTP-01.
//   - [File]: a PEM chain and key on disk (certbot's live/ files), reloaded
//     without dropping connections.
//   - [SelfSigned]: a generated certificate whose fingerprint clients pin.
//   - [Static] and [SourceFunc]: adapters.
//   - [SNI]: picks one of the above by server name.
//
// A typical ACME setup:
//
//	src, err := certs.NewACME("ops@example.com", "node.example.com")
//	...
//	srv := &http.Server{Addr: ":443", Handler: h, TLSConfig: certs.TLSConfig(src)}
//	go http.ListenAndServe(":80", src.HTTPHandler(nil))
//	srv.ListenAndServeTLS("", "")
//
// # ALPN and HTTP/2
//
// [TLSConfig] offers only "http/1.1" (plus "acme-tls/1" for ACME) because
// WebSocket upgrades need HTTP/1.1. An [net/http.Server] adds "h2" to
// NextProtos by itself unless its Protocols exclude HTTP/2;
// wssproxy.NewServer does that.
//
// # Reloading
//
// No source runs a background goroutine. [File] and [SelfSigned] check
// for work lazily during handshakes; autocert runs its own renewal timers.
// A new certificate applies to new handshakes; established connections
// keep theirs.
//
// # Security
//
// [ACME] only ever orders certificates for its Domains, and rejects other
// names before contacting the CA. Using it accepts the CA's terms of
// service. Keep the ACME cache and [SelfSigned.Dir] private: they hold
// private keys.
package certs
