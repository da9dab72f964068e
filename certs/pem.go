package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ParsePEM parses a PEM certificate chain (leaf first, as in certbot's
// fullchain.pem) and a PEM private key (PKCS #8, PKCS #1 or SEC 1) into a
// certificate with Leaf set.
//
// It fails when there is no CERTIFICATE block, when any block of the chain
// does not parse, when there is no key, or when the key does not match the
// leaf. It does not check validity dates; see [CheckValidity].
func ParsePEM(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, err
	}
	if !hasKeyBlock(keyPEM) {
		return nil, errors.New("certs: no PRIVATE KEY block in key PEM")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: private key: %w", err)
	}
	cert.Certificate = chain
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(chain[0]); err != nil {
			return nil, fmt.Errorf("certs: leaf certificate: %w", err)
		}
	}
	return &cert, nil
}

// parseChain returns the DER of every CERTIFICATE block, checking that each
// parses. Blocks of other types are an error: a key in the chain file is
// a likely mix-up worth reporting.
func parseChain(certPEM []byte) ([][]byte, error) {
	var chain [][]byte
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certs: unexpected %q block in certificate PEM", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("certs: certificate %d of chain: %w", len(chain), err)
		}
		chain = append(chain, block.Bytes)
	}
	if len(chain) == 0 {
		return nil, errors.New("certs: no CERTIFICATE block in certificate PEM")
	}
	return chain, nil
}

func hasKeyBlock(keyPEM []byte) bool {
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return false
		}
		if block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY") {
			return true
		}
	}
}

// CheckValidity reports an error if leaf is expired or not yet valid at now.
func CheckValidity(leaf *x509.Certificate, now time.Time) error {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("certs: certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("certs: certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// Fingerprint returns the SHA-256 fingerprint of a DER certificate as
// uppercase hex pairs joined by colons, the form of
// `openssl x509 -noout -fingerprint -sha256`. Drop the colons for plain hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
